package k8ssync

import (
	"k8s.io/client-go/tools/cache"
)

// caches are the informer stores of one kind of object: one store over the
// whole cluster or, in namespaced mode, one per granted namespace (the
// broker may not list the kind cluster-wide there). Reads look at every
// store, so the Syncer reads the same way in both modes.
type caches[T any] []cache.Indexer

// get returns the object named ns/name, if a store holds it.
func (c caches[T]) get(ns, name string) (T, bool) {
	for _, idx := range c {
		if obj, ok, _ := idx.GetByKey(ns + "/" + name); ok {
			return obj.(T), true
		}
	}
	var zero T
	return zero, false
}

// inNamespace lists the objects in ns.
func (c caches[T]) inNamespace(ns string) []T {
	return c.byIndex(cache.NamespaceIndex, ns)
}

// byIndex lists the objects an index files under value.
func (c caches[T]) byIndex(index, value string) []T {
	var out []T
	for _, idx := range c {
		objs, _ := idx.ByIndex(index, value)
		for _, obj := range objs {
			out = append(out, obj.(T))
		}
	}
	return out
}

// all lists every object.
func (c caches[T]) all() []T {
	var out []T
	for _, idx := range c {
		for _, obj := range idx.List() {
			out = append(out, obj.(T))
		}
	}
	return out
}
