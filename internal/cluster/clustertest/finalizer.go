package clustertest

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

// Finalizer plays the controller owning finalizer on one object (Rancher's
// node controller, Cluster API's Machine controller): once the object is
// deleting it runs onDelete, then drops that finalizer only. It stops with
// the test.
func Finalizer(t testing.TB, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name, finalizer string, onDelete func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			o, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || o.GetDeletionTimestamp() == nil {
				return false, nil
			}
			onDelete()
			o.SetFinalizers(slices.DeleteFunc(o.GetFinalizers(), func(f string) bool { return f == finalizer }))
			_, err = dyn.Resource(gvr).Namespace(ns).Update(ctx, o, metav1.UpdateOptions{})
			return err == nil, nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
}
