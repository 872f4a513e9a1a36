package main

import (
	"encoding/json"
	"io"

	"github.com/kilnbuild/kiln/doctor"
	"github.com/kilnbuild/kiln/verify"
)

// Every --json output is one JSON document: an object whose schemaVersion
// says its shape (README "JSON outputs"), so `jq` and `python3 -m
// json.tool` read it whole. A version changes only when a field is removed
// or changes meaning; new fields keep it. release --json prints
// release.json itself (build.ResultSchemaVersion).
const (
	planSchemaVersion   = 1
	verifySchemaVersion = 1
	doctorSchemaVersion = 1
)

// planDocument is `kiln plan --json`.
type planDocument struct {
	SchemaVersion int       `json:"schemaVersion"`
	App           string    `json:"app"`
	Rows          []planRow `json:"targets"`
}

// verifyDocument is `kiln verify --json`: every platform checked, in one
// document. Passed is false exactly when some report did not pass.
type verifyDocument struct {
	SchemaVersion int              `json:"schemaVersion"`
	Image         string           `json:"image"`
	Passed        bool             `json:"passed"`
	Reports       []*verify.Report `json:"reports"`
}

func newVerifyDocument(image string, reports []*verify.Report) verifyDocument {
	doc := verifyDocument{SchemaVersion: verifySchemaVersion, Image: image, Passed: true, Reports: reports}
	for _, r := range reports {
		doc.Passed = doc.Passed && r.Passed
	}
	if doc.Reports == nil {
		doc.Reports = []*verify.Report{}
	}
	return doc
}

// doctorDocument is `kiln doctor --json`.
type doctorDocument struct {
	SchemaVersion int           `json:"schemaVersion"`
	Tools         []doctor.Tool `json:"tools"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
