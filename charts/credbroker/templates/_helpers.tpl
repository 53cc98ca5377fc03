{{- define "credbroker.name" -}}credbroker{{- end }}

{{- define "credbroker.fullname" -}}
{{- if contains "credbroker" .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-credbroker" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "credbroker.labels" -}}
app.kubernetes.io/name: credbroker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "credbroker.selector" -}}
app.kubernetes.io/name: credbroker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "credbroker.scheme" -}}{{ if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end }}{{- end }}

{{/* What credbroker does in a tenant's namespace: cluster-wide, or in
namespaced mode per granted namespace. */}}
{{- define "credbroker.tenantNamespaceRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "update"]
# --registry-token-service: a refresh token is good while the Pod its
# ServiceAccount token was bound to is (registrytoken.BoundPods).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "update"]
{{- end }}
