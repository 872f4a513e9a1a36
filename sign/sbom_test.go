package sign_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/sign"
)

type spdxDoc struct {
	SPDXVersion       string `json:"spdxVersion"`
	DataLicense       string `json:"dataLicense"`
	SPDXID            string `json:"SPDXID"`
	Name              string `json:"name"`
	DocumentNamespace string `json:"documentNamespace"`
	Comment           string `json:"comment"`
	CreationInfo      struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
		Comment  string   `json:"comment"`
	} `json:"creationInfo"`
	Packages []struct {
		Name             string `json:"name"`
		SPDXID           string `json:"SPDXID"`
		VersionInfo      string `json:"versionInfo"`
		DownloadLocation string `json:"downloadLocation"`
		FilesAnalyzed    *bool  `json:"filesAnalyzed"`
		Checksums        []struct {
			Algorithm     string `json:"algorithm"`
			ChecksumValue string `json:"checksumValue"`
		} `json:"checksums"`
		ExternalRefs []struct {
			ReferenceCategory string `json:"referenceCategory"`
			ReferenceType     string `json:"referenceType"`
			ReferenceLocator  string `json:"referenceLocator"`
		} `json:"externalRefs"`
		Comment     string `json:"comment"`
		Annotations []struct {
			AnnotationDate string `json:"annotationDate"`
			AnnotationType string `json:"annotationType"`
			Annotator      string `json:"annotator"`
			Comment        string `json:"comment"`
		} `json:"annotations"`
	} `json:"packages"`
	Relationships []struct {
		SPDXElementID      string `json:"spdxElementId"`
		RelationshipType   string `json:"relationshipType"`
		RelatedSPDXElement string `json:"relatedSpdxElement"`
	} `json:"relationships"`
}

var spdxIDRe = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)

// spdxProps are the property names the SPDX 2.3 JSON schema allows (with
// additionalProperties false) on the objects kiln writes, and spdxEnums the
// values it allows.
var (
	spdxProps = map[string][]string{
		"document": {"SPDXID", "annotations", "comment", "creationInfo", "dataLicense", "externalDocumentRefs",
			"hasExtractedLicensingInfos", "name", "revieweds", "spdxVersion", "documentNamespace",
			"documentDescribes", "packages", "files", "snippets", "relationships"},
		"creationInfo": {"comment", "created", "creators", "licenseListVersion"},
		"package": {"SPDXID", "annotations", "attributionTexts", "builtDate", "checksums", "comment",
			"copyrightText", "description", "downloadLocation", "externalRefs", "filesAnalyzed", "hasFiles",
			"homepage", "licenseComments", "licenseConcluded", "licenseDeclared", "licenseInfoFromFiles", "name",
			"originator", "packageFileName", "packageVerificationCode", "primaryPackagePurpose", "releaseDate",
			"sourceInfo", "summary", "supplier", "validUntilDate", "versionInfo"},
		"annotation":   {"annotationDate", "annotationType", "annotator", "comment"},
		"checksum":     {"algorithm", "checksumValue"},
		"externalRef":  {"comment", "referenceCategory", "referenceLocator", "referenceType"},
		"relationship": {"spdxElementId", "comment", "relatedSpdxElement", "relationshipType"},
	}
	spdxEnums = map[string][]string{
		"primaryPackagePurpose": {"OTHER", "INSTALL", "ARCHIVE", "FIRMWARE", "APPLICATION", "FRAMEWORK", "LIBRARY", "CONTAINER", "SOURCE", "DEVICE", "OPERATING_SYSTEM", "FILE"},
		"annotationType":        {"OTHER", "REVIEW"},
		"referenceCategory":     {"OTHER", "PERSISTENT-ID", "SECURITY", "PACKAGE-MANAGER"},
		"algorithm":             {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512", "MD5"},
		"relationshipType":      {"DESCRIBES", "DEPENDS_ON", "RUNTIME_DEPENDENCY_OF", "CONTAINS", "DESCENDANT_OF"},
	}
)

// checkProps fails on a property the schema does not allow on obj, or a
// value outside an enum.
func checkProps(t *testing.T, kind string, obj map[string]any) {
	t.Helper()
	for k, v := range obj {
		if !slices.Contains(spdxProps[kind], k) {
			t.Errorf("%s has property %q, which SPDX 2.3 does not allow there", kind, k)
		}
		if vals, ok := spdxEnums[k]; ok && !slices.Contains(vals, v.(string)) {
			t.Errorf("%s.%s = %q, not an SPDX 2.3 value", kind, k, v)
		}
	}
	for _, req := range map[string][]string{
		"document":     {"SPDXID", "spdxVersion", "dataLicense", "name", "documentNamespace", "creationInfo"},
		"creationInfo": {"created", "creators"},
		"package":      {"SPDXID", "downloadLocation", "name"},
		"annotation":   {"annotationDate", "annotationType", "annotator", "comment"},
		"checksum":     {"algorithm", "checksumValue"},
		"externalRef":  {"referenceCategory", "referenceLocator", "referenceType"},
		"relationship": {"spdxElementId", "relatedSpdxElement", "relationshipType"},
	}[kind] {
		if _, ok := obj[req]; !ok {
			t.Errorf("%s lacks the required property %q", kind, req)
		}
	}
}

func checkSchema(t *testing.T, b []byte) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("SBOM is not JSON: %v", err)
	}
	objs := func(v any) []map[string]any {
		var out []map[string]any
		for _, x := range v.([]any) {
			out = append(out, x.(map[string]any))
		}
		return out
	}
	checkProps(t, "document", doc)
	checkProps(t, "creationInfo", doc["creationInfo"].(map[string]any))
	for _, p := range objs(doc["packages"]) {
		checkProps(t, "package", p)
		for field, kind := range map[string]string{"annotations": "annotation", "checksums": "checksum", "externalRefs": "externalRef"} {
			if v, ok := p[field]; ok {
				for _, o := range objs(v) {
					checkProps(t, kind, o)
				}
			}
		}
	}
	for _, r := range objs(doc["relationships"]) {
		checkProps(t, "relationship", r)
	}
}

// parseSPDX decodes an SBOM and checks it against SPDX 2.3.
func parseSPDX(t *testing.T, b []byte) *spdxDoc {
	t.Helper()
	checkSchema(t, b)
	var doc spdxDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("SBOM is not the expected JSON: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" {
		t.Errorf("document header: %q %q %q", doc.SPDXVersion, doc.DataLicense, doc.SPDXID)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(doc.CreationInfo.Created) {
		t.Errorf("created %q is not YYYY-MM-DDThh:mm:ssZ", doc.CreationInfo.Created)
	}
	if !strings.HasPrefix(doc.DocumentNamespace, "https://") || strings.Contains(doc.DocumentNamespace, "#") {
		t.Errorf("namespace %q", doc.DocumentNamespace)
	}
	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	for _, p := range doc.Packages {
		if !spdxIDRe.MatchString(p.SPDXID) || ids[p.SPDXID] {
			t.Errorf("package %s: bad or duplicate SPDXID %q", p.Name, p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.FilesAnalyzed == nil || *p.FilesAnalyzed {
			t.Errorf("package %s claims filesAnalyzed without a verification code", p.Name)
		}
		for _, c := range p.Checksums {
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c.ChecksumValue) {
				t.Errorf("package %s: bad checksum %+v", p.Name, c)
			}
		}
		for _, a := range p.Annotations {
			if a.AnnotationDate != doc.CreationInfo.Created || !strings.HasPrefix(a.Annotator, "Tool: ") {
				t.Errorf("package %s: bad annotation %+v", p.Name, a)
			}
		}
	}
	describes := false
	for _, r := range doc.Relationships {
		if !ids[r.SPDXElementID] || !ids[r.RelatedSPDXElement] {
			t.Errorf("relationship %+v names an unknown element", r)
		}
		describes = describes || r.SPDXElementID == "SPDXRef-DOCUMENT" && r.RelationshipType == "DESCRIBES"
	}
	if !describes {
		t.Error("the document DESCRIBES nothing")
	}
	return &doc
}

func purls(doc *spdxDoc) map[string]string {
	out := map[string]string{}
	for _, p := range doc.Packages {
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" {
				out[p.Name] = r.ReferenceLocator
			}
		}
	}
	return out
}

// TestSBOMRealBinary writes the SBOM of a real Go binary built with real
// dependencies.
func TestSBOMRealBinary(t *testing.T) {
	bi := appBuildInfo(t)
	base := sign.BaseRef{Name: "gcr.io/distroless/static-debian12:nonroot@sha256:" + strings.Repeat("ab", 32)}
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	a, err := sign.SBOM("hello", bi, base, created)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sign.SBOM("hello", bi, base, created)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two SBOMs of the same inputs differ")
	}
	doc := parseSPDX(t, a)
	if doc.CreationInfo.Created != "2024-05-01T11:00:00Z" {
		t.Errorf("created = %q, want the parameter in UTC", doc.CreationInfo.Created)
	}
	if doc.Name != "hello" {
		t.Errorf("name = %q", doc.Name)
	}

	p := purls(doc)
	if got, want := p["stdlib"], "pkg:golang/stdlib@"+strings.TrimPrefix(bi.GoVersion, "go"); got != want {
		t.Errorf("stdlib purl %q, want %q", got, want)
	}
	if p[bi.Main.Path] != "pkg:golang/"+bi.Main.Path {
		t.Errorf("main module %s purl %q", bi.Main.Path, p[bi.Main.Path])
	}
	if len(bi.Deps) < 2 {
		t.Fatalf("sbomapp records %d dependencies, want at least go-containerregistry and x/sync", len(bi.Deps))
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		want := "pkg:golang/" + m.Path + "@" + strings.ReplaceAll(m.Version, "+", "%2B")
		if p[m.Path] != want {
			t.Errorf("module %s: purl %q, want %q", m.Path, p[m.Path], want)
		}
	}
	var main, ggcr bool
	for _, pkg := range doc.Packages {
		switch pkg.Name {
		case bi.Main.Path:
			main = true
			var gov, cgo bool
			for _, a := range pkg.Annotations {
				gov = gov || a.Comment == "go.toolchain: "+bi.GoVersion
				cgo = cgo || strings.HasPrefix(a.Comment, "go.build.setting: CGO_ENABLED=")
			}
			if !gov || !cgo || !strings.Contains(doc.CreationInfo.Comment, bi.GoVersion) {
				t.Errorf("main module lacks the toolchain or build settings: %+v", pkg.Annotations)
			}
		case "github.com/google/go-containerregistry":
			ggcr = true
			if pkg.VersionInfo != "v0.22.1" || len(pkg.Checksums) != 1 || !strings.Contains(pkg.Comment, "go.sum h1:") {
				t.Errorf("go-containerregistry package = %+v", pkg)
			}
		case base.Name:
			want := "pkg:oci/static-debian12@sha256%3A" + strings.Repeat("ab", 32) + "?repository_url=gcr.io%2Fdistroless%2Fstatic-debian12&tag=nonroot"
			if p[base.Name] != want || pkg.VersionInfo != "sha256:"+strings.Repeat("ab", 32) {
				t.Errorf("base package purl %q version %q, want %q", p[base.Name], pkg.VersionInfo, want)
			}
		}
	}
	if !main || !ggcr {
		t.Errorf("main module listed: %v, go-containerregistry listed: %v", main, ggcr)
	}

	c, _ := sign.SBOM("hello", bi, base, created.Add(time.Second))
	if parseSPDX(t, c).DocumentNamespace == doc.DocumentNamespace {
		t.Error("different documents share a namespace")
	}
}

func TestSBOMBasesAndReplacements(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8 X:boringcrypto",
		Path:      "example.com/app/cmd/app",
		Main:      debug.Module{Path: "example.com/app", Version: "v1.2.3", Sum: "h1:" + strings.Repeat("A", 43) + "="},
		Deps: []*debug.Module{
			{Path: "example.com/z", Version: "v2.0.0+incompatible", Sum: "h1:" + strings.Repeat("B", 43) + "="},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.1", Sum: "h1:" + strings.Repeat("C", 43) + "="}},
			{Path: "example.com/local", Version: "v1.0.0", Replace: &debug.Module{Path: "../local"}},
			{Path: "example.com/a_b", Version: "v0.1.0"},
			{Path: "example.com/a-b", Version: "v0.1.0"},
		},
		Settings: []debug.BuildSetting{{Key: "-tags", Value: "netgo"}, {Key: "CGO_ENABLED", Value: "0"}},
	}
	for _, tc := range []struct {
		base     sign.BaseRef
		wantPurl string // "" means no base package
	}{
		{sign.BaseRef{Name: "scratch"}, ""},
		{sign.BaseRef{}, ""},
		{sign.BaseRef{Name: "alpine:3.19@sha256:" + strings.Repeat("1", 64)}, "pkg:oci/alpine@sha256%3A" + strings.Repeat("1", 64) + "?repository_url=docker.io%2Flibrary%2Falpine&tag=3.19"},
		{sign.BaseRef{Name: "registry.example.com:5000/team/base", Digest: "sha256:" + strings.Repeat("2", 64)}, "pkg:oci/base@sha256%3A" + strings.Repeat("2", 64) + "?repository_url=registry.example.com%3A5000%2Fteam%2Fbase"},
		{sign.BaseRef{Name: "oci:/srv/layouts/debian@sha256:" + strings.Repeat("3", 64)}, "pkg:oci/debian@sha256%3A" + strings.Repeat("3", 64)},
	} {
		t.Run(tc.base.Name, func(t *testing.T) {
			b, err := sign.SBOM("app", bi, tc.base, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			doc := parseSPDX(t, b)
			p := purls(doc)
			var baseName string
			for _, pkg := range doc.Packages {
				if strings.HasPrefix(pkg.SPDXID, "SPDXRef-Package-oci") {
					baseName = pkg.Name
				}
			}
			if tc.wantPurl == "" {
				if baseName != "" || !strings.Contains(doc.Comment, "scratch") {
					t.Errorf("base %q listed as %q; comment %q", tc.base.Name, baseName, doc.Comment)
				}
			} else if p[baseName] != tc.wantPurl {
				t.Errorf("base purl %q, want %q", p[baseName], tc.wantPurl)
			}
			for name, want := range map[string]string{
				"stdlib":           "pkg:golang/stdlib@1.26.8",
				"example.com/app":  "pkg:golang/example.com/app@v1.2.3",
				"example.com/z":    "pkg:golang/example.com/z@v2.0.0%2Bincompatible",
				"example.com/fork": "pkg:golang/example.com/fork@v1.0.1",
				"../local":         "",
				"example.com/a_b":  "pkg:golang/example.com/a_b@v0.1.0",
				"example.com/a-b":  "pkg:golang/example.com/a-b@v0.1.0",
			} {
				if p[name] != want {
					t.Errorf("%s: purl %q, want %q", name, p[name], want)
				}
			}
			if doc.CreationInfo.Created != "1970-01-01T00:00:00Z" {
				t.Errorf("created %q", doc.CreationInfo.Created)
			}
			if !strings.Contains(string(b), "replaces example.com/old v1.0.0") || !strings.Contains(string(b), "go.build.setting: -tags=netgo") {
				t.Error("replacement or build setting not recorded")
			}
		})
	}
	if _, err := sign.SBOM("app", nil, sign.BaseRef{}, time.Time{}); err == nil {
		t.Error("SBOM without build info succeeded")
	}
}
