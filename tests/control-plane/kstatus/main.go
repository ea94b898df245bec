// Command kstatus computes kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux
// and the cli-utils applier use) for Kubernetes objects: it reads a JSON array of objects on
// stdin and prints a JSON array of {"name", "status", "message"} in the same order. keyfront's
// tests feed it the SigningKeyGroups the operator wrote, so the verdict is kstatus's own, not a
// re-statement of its rules.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: stdin is not a JSON array of objects: %v\n", err)
		os.Exit(2)
	}
	verdicts := make([]verdict, 0, len(objects))
	for _, object := range objects {
		// Decoded as Kubernetes decodes it, so integers stay int64 (kstatus insists).
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(object); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: not a Kubernetes object: %v\n", err)
			os.Exit(2)
		}
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", u.GetName(), err)
			os.Exit(1)
		}
		verdicts = append(verdicts, verdict{Name: u.GetName(), Status: result.Status.String(), Message: result.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		os.Exit(1)
	}
}
