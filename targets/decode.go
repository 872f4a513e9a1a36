package targets

// The decoder reads kiln.yaml's YAML document once, into nodes that carry
// their lines, and decodes it strictly: every key must be a field of the
// schema (the yaml tags of Config), every value of its field's kind. The
// keys that KILN_* variables and --set gave are applied to the same nodes
// first, as nodes without a line, so an error about such a key names no
// line of the file, and nothing has to guess where a value came from.

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Override is a key set outside the file: a KILN_* variable or --set.
type Override struct {
	Key    string `json:"key"`    // dotted, e.g. image.repository or targets.static.base
	Value  string `json:"value"`  // as given; a list is comma-separated
	Source string `json:"source"` // where it came from: KILN_IMAGE_REPOSITORY, --set
}

// Decode reads the config file src strictly, applies overrides over it in
// order (a later one wins), fills in the defaults of what is left unset,
// and validates the result. Every problem is a *ConfigError naming the
// file, the key, its line when the value in use is the file's, and the
// fix: a typo such as `libs:` is an error, never ignored.
func Decode(file string, src []byte, overrides []Override) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, &ConfigError{File: file, Problem: "not valid YAML: " + err.Error(), Fix: "correct the YAML syntax"}
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	if len(doc.Content) > 0 && doc.Content[0].Tag != "!!null" {
		root = doc.Content[0]
	}
	d := decoder{file: file}
	if root.Kind != yaml.MappingNode {
		return nil, d.errorf(nil, root, "write the config as a mapping of key: value lines (version, app, targets, …)", "expected a mapping, got %s", describe(root))
	}
	for _, o := range overrides {
		if err := d.override(root, o); err != nil {
			return nil, err
		}
	}
	cfg := defaultConfig()
	cfg.File, cfg.root, cfg.Overrides = file, root, overrides
	if err := d.decode(nil, root, reflect.ValueOf(cfg).Elem()); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type decoder struct{ file string }

func (d *decoder) errorf(path []string, at *yaml.Node, fix, format string, args ...any) *ConfigError {
	line := 0
	if at != nil {
		line = at.Line
	}
	return &ConfigError{File: d.file, Line: line, Key: strings.Join(path, "."), Problem: fmt.Sprintf(format, args...), Fix: fix}
}

// decode stores node n into v, the field at path.
func (d *decoder) decode(path []string, n *yaml.Node, v reflect.Value) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" { // `key:` with nothing after it: keep the default
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if err := d.decode(path, n, elem.Elem()); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	case reflect.Struct:
		return d.decodeStruct(path, n, v)
	case reflect.Map:
		return d.decodeMap(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode {
				return d.errorf(path, n, fmt.Sprintf("write a list: [%s]", n.Value), "expected a list, got the string %q", n.Value)
			}
			return d.errorf(path, n, "write a list of strings", "expected a list, got %s", describe(n))
		}
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode {
				return d.errorf(path, item, "write each item as a plain string", "item %d: expected a string, got %s", i+1, describe(item))
			}
			out = append(out, item.Value)
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		want, fix := "a string", "write a single string value"
		switch v.Kind() {
		case reflect.Bool:
			want, fix = "a boolean", "use true or false"
		case reflect.Int:
			want, fix = "an integer", "write a whole number"
		}
		return d.errorf(path, n, fix, "expected %s, got %s", want, describe(n))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(n.Value))
		if err != nil {
			return d.errorf(path, n, "use true or false", "expected a boolean, got %q", n.Value)
		}
		v.SetBool(b)
	case reflect.Int:
		i, ok := parseInt(n.Value)
		if !ok {
			return d.errorf(path, n, "write a whole number", "expected an integer, got %s", describe(n))
		}
		v.SetInt(i)
	default:
		return fmt.Errorf("internal: no decoder for %s at %s", v.Type(), strings.Join(path, "."))
	}
	return nil
}

// decodeStruct decodes a mapping into a struct: each key must name a field.
func (d *decoder) decodeStruct(path []string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		fix := "write a mapping of key: value lines"
		if len(path) == 2 && path[0] == "targets" {
			fix = "write the target as a mapping with libc and base"
		}
		return d.errorf(path, n, fix, "expected a mapping, got %s", describe(n))
	}
	seen := map[string]*yaml.Node{}
	return d.eachPair(path, n, func(k, val *yaml.Node) error {
		p := append(path[:len(path):len(path)], k.Value)
		f, ok := field(v.Type(), k.Value)
		if !ok {
			return d.errorf(p, k, "remove it or correct the spelling; known keys here: "+strings.Join(keysOf(v.Type()), ", "), "unknown key %q", k.Value)
		}
		if prev := seen[f.name]; prev != nil {
			return d.errorf(p, k, "keep one of them", "written twice (also at line %d)", prev.Line)
		}
		seen[f.name] = k
		return d.decode(p, val, v.Field(f.index))
	})
}

// decodeMap decodes a mapping into the targets map or image.labels.
func (d *decoder) decodeMap(path []string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.errorf(path, n, "write a mapping of key: value lines", "expected a mapping, got %s", describe(n))
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	isTargets := v.Type().Elem().Kind() == reflect.Pointer
	return d.eachPair(path, n, func(k, val *yaml.Node) error {
		p := append(path[:len(path):len(path)], k.Value)
		if isTargets && k.Value != strings.ToLower(k.Value) {
			return d.errorf(p, k, "rename it to "+strings.ToLower(k.Value), "target names must be lowercase (they become part of image tags)")
		}
		if v.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			return d.errorf(p, k, "keep one of them", "written twice")
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if isTargets {
			elem.Set(reflect.New(v.Type().Elem().Elem())) // `static:` alone is an empty target
		}
		if err := d.decode(p, val, elem); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(k.Value), elem)
		return nil
	})
}

// eachPair calls f for each key and value of a mapping, with YAML merge
// keys (`<<: *defaults`) expanded: the mapping's own keys win.
func (d *decoder) eachPair(path []string, n *yaml.Node, f func(k, v *yaml.Node) error) error {
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Tag != "!!merge" {
			own[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" {
			if err := f(k, v); err != nil {
				return err
			}
			continue
		}
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		merged := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			merged = v.Content
		}
		for _, m := range merged {
			if m.Kind == yaml.AliasNode && m.Alias != nil {
				m = m.Alias
			}
			if m.Kind != yaml.MappingNode {
				return d.errorf(path, k, "merge an anchored mapping: <<: *name", "a merge key (<<) takes a mapping or a list of mappings")
			}
			for j := 0; j+1 < len(m.Content); j += 2 {
				if mk := m.Content[j]; !own[mk.Value] && mk.Tag != "!!merge" {
					own[mk.Value] = true
					if err := f(mk, m.Content[j+1]); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// override writes o into the document as nodes without a line.
func (d *decoder) override(root *yaml.Node, o Override) error {
	parts := strings.Split(o.Key, ".")
	n, t := root, reflect.TypeOf(Config{})
	var path []string
	for i := 0; i < len(parts); i++ {
		name, fold := parts[i], t.Kind() == reflect.Struct
		var next reflect.Type
		switch t.Kind() {
		case reflect.Struct:
			f, ok := field(t, name)
			if !ok {
				return d.errorf(append(path, name), nil, "remove it or correct the spelling; known keys here: "+strings.Join(keysOf(t), ", "), "unknown key %q", name)
			}
			name, next = f.name, t.Field(f.index).Type
		case reflect.Map:
			next = t.Elem()
			if next.Kind() == reflect.String { // a label, whose key may hold dots
				name, i = strings.Join(parts[i:], "."), len(parts)-1
			}
		}
		path = append(path, name)
		if next.Kind() == reflect.Pointer && next.Elem().Kind() == reflect.Struct {
			next = next.Elem()
		}
		if i == len(parts)-1 {
			if next.Kind() == reflect.Struct || next.Kind() == reflect.Map {
				return d.errorf(path, nil, "set the keys inside it one by one, e.g. "+strings.Join(path, ".")+"."+firstKey(next), "is a mapping, not a value")
			}
			val, err := d.overrideNode(path, next, o.Value)
			if err != nil {
				return err
			}
			setKey(n, name, val, fold)
			return nil
		}
		child := getKey(n, name, fold)
		if child == nil || child.Kind != yaml.MappingNode {
			child = &yaml.Node{Kind: yaml.MappingNode}
			setKey(n, name, child, fold)
		}
		n, t = child, next
	}
	return nil
}

// overrideNode makes the node of an override's value for a field of type t:
// a list from comma-separated items, a boolean or integer checked first.
func (d *decoder) overrideNode(path []string, t reflect.Type, value string) (*yaml.Node, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	switch t.Kind() {
	case reflect.Slice:
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				seq.Content = append(seq.Content, str(s))
			}
		}
		return seq, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return nil, d.errorf(path, nil, "use true or false", "expected a boolean, got %q", value)
		}
		return str(strconv.FormatBool(b)), nil
	case reflect.Int:
		if _, ok := parseInt(value); !ok {
			return nil, d.errorf(path, nil, "write a whole number", "expected an integer, got %q", value)
		}
	}
	return str(value), nil
}

// getKey returns the value of key in mapping m, or nil. Schema keys match
// case-insensitively (fold), target names and labels exactly.
func getKey(m *yaml.Node, key string, fold bool) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if sameKey(m.Content[i].Value, key, fold) {
			return m.Content[i+1]
		}
	}
	return nil
}

// setKey sets key in mapping m to v; the key node is replaced too, so the
// key no longer names a line of the file.
func setKey(m *yaml.Node, key string, v *yaml.Node, fold bool) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if sameKey(m.Content[i].Value, key, fold) {
			m.Content[i], m.Content[i+1] = k, v
			return
		}
	}
	m.Content = append(m.Content, k, v)
}

func sameKey(a, b string, fold bool) bool {
	return a == b || fold && strings.EqualFold(a, b)
}

// line returns the line of the key at path in the document, 0 when it is
// not there or was set by an override.
func line(root *yaml.Node, path []string) int {
	n, ln := root, 0
	for _, p := range path {
		if n == nil {
			return 0
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; strings.EqualFold(k.Value, p) {
				next, ln = n.Content[i+1], k.Line
				if k.Line == 0 {
					return 0
				}
			}
		}
		n = next
	}
	if n == nil {
		return 0
	}
	return ln
}

type fieldInfo struct {
	name  string // the yaml key
	index int
}

// field finds the schema field of struct t that key names. Keys match
// case-insensitively, as they always have (viper folded their case).
func field(t reflect.Type, key string) (fieldInfo, bool) {
	for i := 0; i < t.NumField(); i++ {
		if k := yamlKey(t.Field(i)); k != "" && strings.EqualFold(k, key) {
			return fieldInfo{k, i}, true
		}
	}
	return fieldInfo{}, false
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func firstKey(t reflect.Type) string {
	if t.Kind() == reflect.Struct {
		return keysOf(t)[0]
	}
	return "<name>"
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if k == "-" || !f.IsExported() {
		return ""
	}
	return k
}

// Keys lists every key kiln.yaml can set, dotted, with the targets that src
// defines expanded (targets.static.base, …): the keys a KILN_* variable can
// override. Maps (image.labels) are left out.
func Keys(src []byte) []string {
	var names struct {
		Targets map[string]any `yaml:"targets"`
	}
	_ = yaml.Unmarshal(src, &names)
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			k := yamlKey(t.Field(i))
			ft := t.Field(i).Type
			switch {
			case k == "":
			case ft.Kind() == reflect.Struct:
				walk(prefix+k+".", ft)
			case ft.Kind() == reflect.Map:
				if k == "targets" {
					for _, n := range slices.Sorted(maps.Keys(names.Targets)) {
						walk(prefix+k+"."+n+".", ft.Elem().Elem())
					}
				}
			default:
				keys = append(keys, prefix+k)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	return keys
}

func parseInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == float64(int64(f)) {
		return int64(f), true
	}
	return 0, false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!bool":
		return "the boolean " + n.Value
	case "!!int", "!!float":
		return "the number " + n.Value
	}
	return fmt.Sprintf("the string %q", n.Value)
}
