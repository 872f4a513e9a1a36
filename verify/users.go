package verify

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// execUser is who the process of an image runs as, as a runtime resolves
// the image config's User.
type execUser struct {
	uid, gid int
	groups   []int  // supplementary groups, from /etc/group memberships
	name     string // the /etc/passwd entry matched, "" when none was
	line     int    // its line number (from 1)
}

// userRule names the rules resolveUser follows, for evidence.
const userRule = "runc libcontainer/user GetExecUser, as umoci, runc and moby resolve it"

// maxUserID is libcontainer's limit on a numeric id (int32, for 32-bit
// systems).
const maxUserID = 1<<31 - 1

// resolveUser resolves an image's User the way runc's libcontainer/user
// GetExecUser does (umoci 0.4 and runc 1.1 use it; moby and containerd
// follow the same rules): "user[:group[:ignored]]"; a user that parses as
// an integer is a uid, matched against the uid field of /etc/passwd
// only, anything else a name matched against the name field only; the
// first matching line wins; lines are trimmed of white space (blank ones
// skipped, '#' not special in passwd), split at ':', and a number that
// does not parse counts as 0. A name not found fails (the container does
// not start); a uid not found is used as it is, with group 0. With no
// explicit group, a matched user's gid is its passwd gid and its
// supplementary groups are the /etc/group entries listing its name.
// /etc/passwd and /etc/group are read as the runtime reads them, from
// outside the container: missing or unopenable is "no file", a file that
// cannot be read (a directory) is an error.
func resolveUser(fsys *FS, spec string) (execUser, error) {
	root := newProc(fsys, nil)
	parts := strings.Split(spec, ":")
	userArg, groupArg := parts[0], ""
	if len(parts) > 1 {
		groupArg = parts[1]
	}
	uidArg, uidErr := strconv.Atoi(userArg)
	gidArg, gidErr := strconv.Atoi(groupArg)

	var u execUser
	passwd, havePasswd, err := userFile(root, "/etc/passwd", true)
	if err != nil {
		name := userArg
		if name == "" {
			name = "0"
		}
		return u, fmt.Errorf("unable to find user %s: reading /etc/passwd: %w", name, err)
	}
	matched := false
	for i, f := range passwd {
		if f == nil {
			continue
		}
		uid, gid := atoiOrZero(field(f, 2)), atoiOrZero(field(f, 3))
		var ok bool
		switch {
		case userArg == "":
			ok = uid == 0
		case uidErr == nil:
			ok = uid == uidArg
		default:
			ok = field(f, 0) == userArg
		}
		if ok {
			u = execUser{uid: uid, gid: gid, name: field(f, 0), line: i + 1}
			matched = true
			break
		}
	}
	if !matched && userArg != "" {
		if uidErr != nil {
			why := "no matching entries in passwd file"
			if !havePasswd {
				why = "the image has no /etc/passwd"
			}
			return u, fmt.Errorf("unable to find user %s: %s", userArg, why)
		}
		if uidArg < 0 || uidArg > maxUserID {
			return u, fmt.Errorf("user %s: uids and gids must be in range 0-%d", userArg, maxUserID)
		}
		u.uid = uidArg
	}
	if groupArg == "" && u.name == "" {
		return u, nil
	}
	groups, _, err := userFile(root, "/etc/group", false)
	if err != nil {
		return u, fmt.Errorf("unable to find groups for spec %s: reading /etc/group: %w", u.name, err)
	}
	var found []int
	for _, f := range groups {
		gid := atoiOrZero(field(f, 2))
		switch {
		case groupArg == "":
			if members := field(f, 3); members != "" && containsStr(strings.Split(members, ","), u.name) {
				found = append(found, gid)
			}
		case gidErr == nil && gid == gidArg, gidErr != nil && field(f, 0) == groupArg:
			found = append(found, gid)
		}
	}
	switch {
	case groupArg == "":
		u.groups = found
	case len(found) > 0:
		u.gid = found[0]
	case gidErr != nil:
		return u, fmt.Errorf("unable to find group %s: no matching entries in group file", groupArg)
	case gidArg < 0 || gidArg > maxUserID:
		return u, fmt.Errorf("group %s: uids and gids must be in range 0-%d", groupArg, maxUserID)
	default:
		u.gid = gidArg
	}
	return u, nil
}

// userFile reads a passwd or group file the way libcontainer does: lines
// of at most 64 KiB for passwd (bufio.Scanner), trimmed, blank lines (and
// in group, '#' comments) skipped, split at ':'. It reports whether the
// file could be opened.
func userFile(root *proc, name string, passwd bool) ([][]string, bool, error) {
	e, err := root.open(name)
	if err != nil {
		return nil, false, nil
	}
	if e.Type != TypeFile {
		return nil, true, fmt.Errorf("%s is a %s", name, e.Type)
	}
	data, err := root.content(e)
	if err != nil {
		return nil, true, err
	}
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !passwd {
		sc.Buffer(nil, len(data)+1) // group lines may be any length
	}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || (!passwd && line[0] == '#') {
			if passwd {
				out = append(out, nil) // keeps line numbers for evidence
			}
			continue
		}
		out = append(out, strings.Split(string(line), ":"))
	}
	if err := sc.Err(); err != nil {
		return nil, true, err
	}
	return out, true, nil
}

func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// atoiOrZero is libcontainer's number parsing: errors are ignored, so
// "x" and "" are 0.
func atoiOrZero(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
