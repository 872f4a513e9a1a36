package sign

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// SBOMPredicateType is the in-toto predicate type of an SPDX JSON SBOM: what
// cosign attest and verify-attestation mean by --type spdxjson.
const SBOMPredicateType = "https://spdx.dev/Document"

// BaseRef names the base image a binary ships on: the reference as
// configured (gcr.io/distroless/static-debian12:nonroot@sha256:…, scratch,
// oci:<path>@sha256:…) and the digest of the manifest actually used.
type BaseRef struct {
	Name   string
	Digest string
}

// SBOM returns an SPDX 2.3 JSON document for a Go binary: the main module,
// every dependency module (version, go.sum hash as a SHA256 checksum, a
// pkg:golang purl; replacements resolved), the Go standard library at the
// toolchain's version, the build settings as annotations on the main
// module, and the base image (pkg:oci purl with its digest) unless it is
// scratch. The output depends only on the arguments: created is the
// document's creation time (kiln passes SOURCE_DATE_EPOCH), and the
// document namespace is derived from the content.
func SBOM(name string, bi *buildinfo.BuildInfo, base BaseRef, created time.Time) ([]byte, error) {
	if bi == nil {
		return nil, &Error{Op: "writing the SBOM for " + name, Err: fmt.Errorf("no build info")}
	}
	date := created.UTC().Format("2006-01-02T15:04:05Z")
	ids := spdxIDs{}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        name,
		CreationInfo: spdxCreationInfo{
			Created:  date,
			Creators: []string{"Tool: kiln"},
			Comment:  "Go build info of the binary, read by kiln; built with " + bi.GoVersion,
		},
	}

	mainPath := bi.Main.Path
	if mainPath == "" {
		mainPath = bi.Path
	}
	main := modulePackage(ids, debugModule(bi.Main, mainPath), "APPLICATION")
	main.Comment = strings.TrimSpace(fmt.Sprintf("main package %s; %s", bi.Path, main.Comment))
	main.Annotations = append(main.Annotations, spdxAnnotation{
		AnnotationDate: date, AnnotationType: "OTHER", Annotator: "Tool: kiln",
		Comment: "go.toolchain: " + bi.GoVersion,
	})
	for _, s := range bi.Settings {
		main.Annotations = append(main.Annotations, spdxAnnotation{
			AnnotationDate: date, AnnotationType: "OTHER", Annotator: "Tool: kiln",
			Comment: fmt.Sprintf("go.build.setting: %s=%s", s.Key, s.Value),
		})
	}
	doc.Packages = append(doc.Packages, main)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", main.SPDXID})

	goVersion, _, _ := strings.Cut(bi.GoVersion, " ") // "go1.26.8 X:boringcrypto"
	std := spdxPackage{
		Name:                  "stdlib",
		SPDXID:                ids.next("SPDXRef-Package-go-stdlib"),
		VersionInfo:           goVersion,
		DownloadLocation:      "NOASSERTION",
		PrimaryPackagePurpose: "LIBRARY",
		Comment:               "the Go standard library and runtime of toolchain " + bi.GoVersion,
		ExternalRefs:          []spdxExternalRef{purlRef("pkg:golang/stdlib@" + purlEscape(strings.TrimPrefix(goVersion, "go")))},
	}
	std.noAssertions()
	doc.Packages = append(doc.Packages, std)
	doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", std.SPDXID})

	deps := slices.Clone(bi.Deps)
	slices.SortFunc(deps, func(a, b *debug.Module) int { return strings.Compare(a.Path, b.Path) })
	for _, d := range deps {
		if d == nil {
			continue
		}
		p := modulePackage(ids, d, "LIBRARY")
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", p.SPDXID})
	}

	if p, ok := basePackage(ids, base); ok {
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{p.SPDXID, "RUNTIME_DEPENDENCY_OF", main.SPDXID})
	} else {
		doc.Comment = "no base image: the binary ships on scratch"
	}

	// The namespace must be unique per document; a hash of the content
	// makes it so without a random or time-based part.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, &Error{Op: "writing the SBOM for " + name, Err: err}
	}
	sum := sha256.Sum256(b)
	doc.DocumentNamespace = fmt.Sprintf("https://kilnbuild.dev/spdx/%s-%s", purlEscape(name), hex.EncodeToString(sum[:16]))
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, &Error{Op: "writing the SBOM for " + name, Err: err}
	}
	return append(out, '\n'), nil
}

func debugModule(m debug.Module, path string) *debug.Module {
	m.Path = path
	return &m
}

// modulePackage describes a Go module, or what replaced it.
func modulePackage(ids spdxIDs, m *debug.Module, purpose string) spdxPackage {
	eff := m
	var notes []string
	if m.Replace != nil {
		eff = m.Replace
		notes = append(notes, fmt.Sprintf("replaces %s %s", m.Path, m.Version))
	}
	p := spdxPackage{
		Name:                  eff.Path,
		SPDXID:                ids.next("SPDXRef-Package-go-module-" + eff.Path),
		VersionInfo:           eff.Version,
		DownloadLocation:      "NOASSERTION",
		PrimaryPackagePurpose: purpose,
	}
	p.noAssertions()
	if eff.Version == "" && (strings.HasPrefix(eff.Path, ".") || strings.HasPrefix(eff.Path, "/")) {
		notes = append(notes, "a local directory, not a published module")
	} else {
		purl := "pkg:golang/" + purlPath(eff.Path)
		if v := eff.Version; v != "" && v != "(devel)" {
			purl += "@" + purlEscape(v)
		}
		p.ExternalRefs = []spdxExternalRef{purlRef(purl)}
	}
	if eff.Sum != "" {
		notes = append(notes, "go.sum "+eff.Sum)
		if hexSum, ok := h1Hex(eff.Sum); ok {
			p.Checksums = []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hexSum}}
		}
	}
	p.Comment = strings.Join(notes, "; ")
	return p
}

// h1Hex turns a go.sum "h1:" hash (base64 SHA-256 of the module's dirhash)
// into hex.
func h1Hex(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(b), true
}

// basePackage describes the base image, unless there is none (scratch).
func basePackage(ids spdxIDs, base BaseRef) (spdxPackage, bool) {
	ref, digest, _ := strings.Cut(base.Name, "@")
	if base.Digest != "" {
		digest = base.Digest
	}
	if ref == "" || ref == "scratch" {
		return spdxPackage{}, false
	}
	p := spdxPackage{
		Name:                  base.Name,
		SPDXID:                ids.next("SPDXRef-Package-oci-base"),
		VersionInfo:           digest,
		DownloadLocation:      "NOASSERTION",
		PrimaryPackagePurpose: "CONTAINER",
		Comment:               "the base image the binary runs on",
	}
	p.noAssertions()
	if alg, hx, ok := strings.Cut(digest, ":"); ok && alg == "sha256" {
		p.Checksums = []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hx}}
	}
	var pname string
	var quals []string
	if dir, ok := strings.CutPrefix(ref, "oci:"); ok {
		pname = path.Base(strings.TrimRight(dir, "/"))
	} else if r, err := name.ParseReference(ref); err == nil {
		repo := r.Context()
		pname = path.Base(repo.RepositoryStr())
		reg := repo.RegistryStr()
		if reg == name.DefaultRegistry {
			reg = "docker.io"
		}
		quals = append(quals, "repository_url="+purlEscape(reg+"/"+repo.RepositoryStr()))
		if t, ok := r.(name.Tag); ok && strings.Contains(path.Base(ref), ":") {
			quals = append(quals, "tag="+purlEscape(t.TagStr()))
		}
	} else {
		pname = path.Base(ref)
	}
	purl := "pkg:oci/" + purlEscape(strings.ToLower(pname))
	if digest != "" {
		purl += "@" + purlEscape(digest)
	}
	if len(quals) > 0 {
		purl += "?" + strings.Join(quals, "&")
	}
	p.ExternalRefs = []spdxExternalRef{purlRef(purl)}
	return p, true
}

func purlRef(purl string) spdxExternalRef {
	return spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: purl}
}

// purlPath escapes a module path segment by segment: the namespace and name
// of a pkg:golang purl.
func purlPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = purlEscape(s)
	}
	return strings.Join(segs, "/")
}

// purlEscape percent-encodes everything but the unreserved characters.
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// spdxIDs hands out unique SPDX identifiers ([A-Za-z0-9.-] only).
type spdxIDs map[string]bool

func (ids spdxIDs) next(want string) string {
	var b strings.Builder
	for _, r := range want {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	id := b.String()
	for n := 2; ids[id]; n++ {
		id = fmt.Sprintf("%s-%d", b.String(), n)
	}
	ids[id] = true
	return id
}

type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	Comment           string             `json:"comment,omitempty"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
	Comment  string   `json:"comment,omitempty"`
}

type spdxPackage struct {
	Name                  string            `json:"name"`
	SPDXID                string            `json:"SPDXID"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	Checksums             []spdxChecksum    `json:"checksums,omitempty"`
	LicenseConcluded      string            `json:"licenseConcluded"`
	LicenseDeclared       string            `json:"licenseDeclared"`
	CopyrightText         string            `json:"copyrightText"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
	Comment               string            `json:"comment,omitempty"`
	Annotations           []spdxAnnotation  `json:"annotations,omitempty"`
}

// noAssertions fills the fields kiln cannot know from build info.
func (p *spdxPackage) noAssertions() {
	p.LicenseConcluded, p.LicenseDeclared, p.CopyrightText = "NOASSERTION", "NOASSERTION", "NOASSERTION"
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxAnnotation struct {
	AnnotationDate string `json:"annotationDate"`
	AnnotationType string `json:"annotationType"`
	Annotator      string `json:"annotator"`
	Comment        string `json:"comment"`
}

type spdxRelationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}
