package targets

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// kiln lock's side of the config: which bases to pin and the edit of the
// file's bytes that pins them. Resolving a reference to the digest it names
// now is the caller's (build.ResolveBase reads registries and layouts).

// Pin is one base reference kiln lock looked at.
type Pin struct {
	Key  string // targets.<name>.base
	Line int
	Old  string // as written
	New  string // pinned to what the tag or layout name points to now
}

// Stale reports whether the file's value differs from the current pin.
func (p Pin) Stale() bool { return p.Old != p.New }

// Lock finds every base in the config source that names a tag or a layout
// entry (pinned or not), asks resolve for the digest it points to now, and
// returns the source with those values replaced. resolve gets the reference
// without its digest, a layout path made absolute. Only the bytes of each
// changed value change: comments, order, quoting and layout of the file are
// kept. Bases with a digest and nothing to resolve it from (no tag) are left
// as they are, as is scratch. A resolve error that is a refusal (see Facts)
// becomes a *ConfigError at the base's key; any other is returned as it is.
func Lock(file string, src []byte, resolve func(BaseRef) (digest string, err error)) ([]byte, []Pin, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, &ConfigError{File: file, Problem: "not valid YAML: " + err.Error(), Fix: "correct the YAML syntax"}
	}
	tmap := mapValue(docRoot(&doc), "targets")
	if tmap == nil {
		return nil, nil, &ConfigError{File: file, Key: "targets", Problem: "no targets to lock"}
	}
	var pins []Pin
	type edit struct {
		node *yaml.Node
		pin  Pin
	}
	var edits []edit
	for i := 0; i+1 < len(tmap.Content); i += 2 {
		tname := tmap.Content[i].Value
		node := mapValue(tmap.Content[i+1], "base")
		if node == nil || node.Kind != yaml.ScalarNode {
			continue
		}
		key := "targets." + tname + ".base"
		if node.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil, nil, &ConfigError{File: file, Line: node.Line, Key: key, Problem: "cannot rewrite the value: it is a block scalar", Fix: "write the base as a one-line string"}
		}
		ref, err := ParseBase(node.Value)
		if err != nil {
			return nil, nil, &ConfigError{File: file, Line: node.Line, Key: key, Problem: err.Error()}
		}
		if ref.Kind == BaseScratch || (ref.Kind == BaseRegistry && ref.Tag == "" && ref.Digest != "") ||
			(ref.Kind == BaseLayout && ref.RefName == "" && ref.Digest != "") {
			continue
		}
		if ref.Kind == BaseLayout && ref.RefName == "" {
			return nil, nil, &ConfigError{File: file, Line: node.Line, Key: key, Problem: fmt.Sprintf("%q names neither a digest nor a layout entry", node.Value),
				Fix: "write oci:<path>:<name> so kiln lock can find the entry by its org.opencontainers.image.ref.name"}
		}
		lookup := ref
		lookup.Digest = "" // resolve the tag or name, not the old pin
		if lookup.Kind == BaseLayout && !filepath.IsAbs(lookup.Path) {
			lookup.Path = filepath.Join(filepath.Dir(file), lookup.Path)
		}
		d, err := resolve(lookup)
		if err != nil {
			var rf interface{ Refusal() (problem, fix string) }
			if errors.As(err, &rf) {
				problem, fix := rf.Refusal()
				return nil, nil, &ConfigError{File: file, Line: node.Line, Key: key, Problem: problem, Fix: fix}
			}
			return nil, nil, err
		}
		pin := Pin{Key: key, Line: node.Line, Old: node.Value, New: ref.WithDigest(d)}
		pins = append(pins, pin)
		if pin.Stale() {
			edits = append(edits, edit{node, pin})
		}
	}
	out := src
	// Apply from the end of the file so earlier offsets stay valid.
	for i := len(edits) - 1; i >= 0; i-- {
		var err error
		e := edits[i]
		if out, err = replaceScalar(out, e.node, e.pin.New); err != nil {
			return nil, nil, &ConfigError{File: file, Line: e.node.Line, Key: e.pin.Key, Problem: "cannot rewrite the value: " + err.Error(), Fix: "write the base as a one-line string"}
		}
	}
	return out, pins, nil
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// replaceScalar replaces the single-line scalar node in src with text,
// keeping the node's quoting style.
func replaceScalar(src []byte, n *yaml.Node, text string) ([]byte, error) {
	lines := bytes.SplitAfter(src, []byte("\n"))
	if n.Line < 1 || n.Line > len(lines) {
		return nil, fmt.Errorf("line %d is outside the file", n.Line)
	}
	line := string(lines[n.Line-1])
	runes := []rune(line)
	if n.Column < 1 || n.Column > len(runes) {
		return nil, fmt.Errorf("column %d is outside line %d", n.Column, n.Line)
	}
	start := len(string(runes[:n.Column-1]))
	var old, repl string
	switch n.Style {
	case 0:
		old, repl = n.Value, text
	case yaml.DoubleQuotedStyle:
		old, repl = strconv.Quote(n.Value), strconv.Quote(text)
	case yaml.SingleQuotedStyle:
		old, repl = "'"+strings.ReplaceAll(n.Value, "'", "''")+"'", "'"+strings.ReplaceAll(text, "'", "''")+"'"
	default:
		return nil, fmt.Errorf("the value is a block scalar; write it on one line")
	}
	if !strings.HasPrefix(line[start:], old) {
		return nil, fmt.Errorf("the value is not written as a plain one-line scalar")
	}
	lines[n.Line-1] = []byte(line[:start] + repl + line[start+len(old):])
	return bytes.Join(lines, nil), nil
}
