package targets

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode turns merged settings (the file overlaid with KILN_* variables and
// flags, as the CLI's viper instance produces them) into a Config, then
// validates it. src is the file's bytes, used to name lines in errors and to
// tell a value written in the file from one that came from the environment.
//
// Every key must be known: a typo such as `libs:` is an error, never ignored.
func Decode(file string, src []byte, settings map[string]any) (*Config, error) {
	d := decoder{file: file}
	if len(src) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(src, &doc); err != nil {
			return nil, &ConfigError{File: file, Problem: "not valid YAML: " + err.Error(), Fix: "correct the YAML syntax"}
		}
		if len(doc.Content) > 0 {
			d.root = doc.Content[0]
		}
	}
	cfg := &Config{File: file, lines: d.line}
	if err := d.decodeStruct(nil, reflect.ValueOf(cfg).Elem(), settings); err != nil {
		return nil, err
	}
	if err := d.fixCase(cfg); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type decoder struct {
	file string
	root *yaml.Node
	// overridden holds the dotted keys whose value came from KILN_*
	// variables or --set rather than the file: their file line would point
	// at a value that is not the one in use.
	overridden map[string]bool
}

// node finds the YAML node at path. Keys match case-insensitively because
// viper lowercases every key it reads.
func (d *decoder) node(path []string) (key, value *yaml.Node) {
	n := d.root
	for _, p := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil, nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if strings.EqualFold(n.Content[i].Value, p) {
				key, next = n.Content[i], n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil, nil
		}
		n = next
	}
	return key, n
}

// line returns the line of the key at path in the file, or 0 when the key
// is not in the file or its value was overridden.
func (d *decoder) line(path ...string) int {
	for i := range path {
		if d.overridden[strings.Join(path[:i+1], ".")] {
			return 0
		}
	}
	if k, _ := d.node(path); k != nil {
		return k.Line
	}
	return 0
}

// noteOverride records whether a scalar or list value differs from what the
// file says at path.
func (d *decoder) noteOverride(path []string, raw any) {
	_, n := d.node(path)
	if n == nil {
		return
	}
	same := false
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := scalarString(raw)
		if b, isBool := raw.(bool); isBool {
			s, ok = strconv.FormatBool(b), true
		}
		same = ok && s == n.Value
	case yaml.SequenceNode:
		l, ok := raw.([]any)
		same = ok && len(l) == len(n.Content)
		for i := 0; same && i < len(l); i++ {
			s, ok := scalarString(l[i])
			same = ok && s == n.Content[i].Value
		}
	default:
		return
	}
	if !same {
		if d.overridden == nil {
			d.overridden = map[string]bool{}
		}
		d.overridden[strings.Join(path, ".")] = true
	}
}

func (d *decoder) errorf(path []string, fix, format string, args ...any) error {
	return &ConfigError{File: d.file, Line: d.line(path...), Key: strings.Join(path, "."), Problem: fmt.Sprintf(format, args...), Fix: fix}
}

// fields maps each known key of a struct type to its field index.
func fields(t reflect.Type) (map[string]int, []string) {
	byKey := map[string]int{}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		k := t.Field(i).Tag.Get("kiln")
		if k == "" || k == "-" {
			continue
		}
		byKey[k] = i
		keys = append(keys, k)
	}
	return byKey, keys
}

func (d *decoder) decodeStruct(path []string, v reflect.Value, m map[string]any) error {
	byKey, known := fields(v.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // file order first, so the first error is the first in the file
		li, lj := d.line(append(path[:len(path):len(path)], keys[i])...), d.line(append(path[:len(path):len(path)], keys[j])...)
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		p := append(path[:len(path):len(path)], k)
		i, ok := byKey[k]
		if !ok {
			return d.errorf(p, "remove it or correct the spelling; known keys here: "+strings.Join(known, ", "), "unknown key %q", k)
		}
		if err := d.decodeValue(p, v.Field(i), m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) decodeValue(path []string, v reflect.Value, raw any) error {
	if raw == nil { // `key:` with nothing after it: leave the default
		return nil
	}
	if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() != reflect.Struct {
		// An optional scalar: decoded (and its override noted) as the value.
		elem := reflect.New(v.Type().Elem())
		if err := d.decodeValue(path, elem.Elem(), raw); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	}
	if v.Kind() != reflect.Map && v.Kind() != reflect.Struct {
		d.noteOverride(path, raw)
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := scalarString(raw)
		if !ok {
			return d.errorf(path, "write a single string value", "expected a string, got %s", describe(raw))
		}
		v.SetString(s)
	case reflect.Bool:
		switch b := raw.(type) {
		case bool:
			v.SetBool(b)
		case string:
			pb, err := strconv.ParseBool(strings.TrimSpace(b))
			if err != nil {
				return d.errorf(path, "use true or false", "expected a boolean, got %q", b)
			}
			v.SetBool(pb)
		default:
			return d.errorf(path, "use true or false", "expected a boolean, got %s", describe(raw))
		}
	case reflect.Int:
		n, ok := toInt(raw)
		if !ok {
			return d.errorf(path, "write a whole number", "expected an integer, got %s", describe(raw))
		}
		v.SetInt(n)
	case reflect.Slice:
		list, err := d.stringList(path, raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(list))
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			return d.errorf(path, "write a mapping of key: value lines", "expected a mapping, got %s", describe(raw))
		}
		out := reflect.MakeMapWithSize(v.Type(), len(m))
		for k, item := range m {
			p := append(path[:len(path):len(path)], k)
			elem := reflect.New(v.Type().Elem()).Elem()
			if elem.Kind() == reflect.Pointer {
				sub, ok := item.(map[string]any)
				if item != nil && !ok {
					return d.errorf(p, "write the target as a mapping with libc and base", "expected a mapping, got %s", describe(item))
				}
				elem.Set(reflect.New(v.Type().Elem().Elem()))
				if err := d.decodeStruct(p, elem.Elem(), sub); err != nil {
					return err
				}
			} else if err := d.decodeValue(p, elem, item); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k), elem)
		}
		v.Set(out)
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return d.errorf(path, "write a mapping of key: value lines", "expected a mapping, got %s", describe(raw))
		}
		return d.decodeStruct(path, v, m)
	default:
		return fmt.Errorf("internal: no decoder for %s at %s", v.Type(), strings.Join(path, "."))
	}
	return nil
}

// stringList accepts a YAML sequence of scalars. A plain string is accepted
// only when it did not come from the file (KILN_* variables and --set give
// comma-separated lists); in the file a string where a list belongs is a
// mistake worth naming (`ldflags: -s -w`).
func (d *decoder) stringList(path []string, raw any) ([]string, error) {
	switch l := raw.(type) {
	case []any:
		out := make([]string, 0, len(l))
		for i, item := range l {
			s, ok := scalarString(item)
			if !ok {
				return nil, d.errorf(path, "write each item as a plain string", "item %d: expected a string, got %s", i+1, describe(item))
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return append([]string(nil), l...), nil
	case string:
		if _, n := d.node(path); n != nil && n.Kind == yaml.ScalarNode {
			return nil, d.errorf(path, fmt.Sprintf("write a list: [%s]", l), "expected a list, got the string %q", l)
		}
		var out []string
		for _, s := range strings.Split(l, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, d.errorf(path, "write a list of strings", "expected a list, got %s", describe(raw))
}

// fixCase restores what viper's lowercasing lost: label keys keep the case
// written in the file, and target names written with capitals are refused
// rather than silently renamed.
func (d *decoder) fixCase(cfg *Config) error {
	if _, n := d.node([]string{"image", "labels"}); n != nil && n.Kind == yaml.MappingNode && len(cfg.Image.Labels) > 0 {
		fixed := make(map[string]string, len(cfg.Image.Labels))
		for k, v := range cfg.Image.Labels {
			fixed[k] = v
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			orig := n.Content[i].Value
			if low := strings.ToLower(orig); low != orig {
				if v, ok := fixed[low]; ok {
					delete(fixed, low)
					fixed[orig] = v
				}
			}
		}
		cfg.Image.Labels = fixed
	}
	if _, n := d.node([]string{"targets"}); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if name := n.Content[i].Value; name != strings.ToLower(name) {
				return &ConfigError{File: d.file, Line: n.Content[i].Line, Key: "targets." + name,
					Problem: "target names must be lowercase (they become part of image tags)", Fix: "rename it to " + strings.ToLower(name)}
			}
		}
	}
	return nil
}

func scalarString(raw any) (string, bool) {
	switch s := raw.(type) {
	case string:
		return s, true
	case int, int64, int32, uint, uint64, uint32:
		return fmt.Sprint(s), true
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64), true
	}
	return "", false
}

func toInt(raw any) (int64, bool) {
	switch n := raw.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

func describe(raw any) string {
	switch raw.(type) {
	case map[string]any:
		return "a mapping"
	case []any, []string:
		return "a list"
	case bool:
		return fmt.Sprintf("the boolean %v", raw)
	case string:
		return fmt.Sprintf("the string %q", raw)
	}
	return fmt.Sprintf("%T %v", raw, raw)
}
