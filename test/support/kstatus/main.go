// kstatus reads a Kubernetes List (JSON, e.g. `kubectl get ... -o json`) on stdin and prints,
// for every item, the status that sigs.k8s.io/cli-utils' kstatus computes for it (the
// library Flux and kpt use): [{"name": ..., "status": "Current", "message": ...}].
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&list); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading the list:", err)
		os.Exit(2)
	}
	out := []result{}
	for _, item := range list.Items {
		// Unstructured's own decoder keeps integers int64, as kstatus expects.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(item); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: decoding an item:", err)
			os.Exit(2)
		}
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", u.GetName(), err)
			os.Exit(1)
		}
		out = append(out, result{Name: u.GetName(), Status: res.Status.String(), Message: res.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}
