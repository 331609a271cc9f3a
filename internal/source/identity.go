package source

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Identity says which filesystem a source root is, in terms that survive a
// remount of the same share and a reboot of the bastion, but not an empty
// mount point or another share:
//
//   - the mount holding the root, by what was mounted (mountinfo's source,
//     e.g. "nas1:/export/receipts" or "/dev/sdb1", and its root within that
//     filesystem) and its filesystem type. An unmounted share leaves the
//     empty directory on the parent filesystem: another source, type and
//     mount point. These fields are fixed by the mount command, not by boot
//     order.
//   - the root directory's inode. For NFS it is the server's file id, stable
//     across remounts; it tells two directories of one filesystem apart.
//   - the same for every mount below the root (per-store sub-mounts), so a
//     missing sub-mount is caught as well.
//
// Not used, on purpose: st_dev and statfs's f_fsid, which for NFS and many
// other filesystems are numbers assigned at mount time (they change on every
// remount and reboot and would make every cutover-night run refuse), and a
// marker file in the share (sources are often mounted read-only, and a
// migration tool should not write into production data).
type Identity struct {
	Mount  MountID   `json:"mount"`
	Inode  uint64    `json:"inode"`
	Mounts []MountID `json:"mounts,omitempty"` // mounts strictly below the root
}

// MountID identifies one mount. Rel is the mount point relative to the
// source root ("" for the mount holding the root, whose mount point may be
// above the root; Within is then the root's path inside that mount).
type MountID struct {
	Rel    string `json:"rel,omitempty"`
	FSType string `json:"fstype"`
	Source string `json:"source"`
	FSRoot string `json:"fs_root"`          // the mounted directory inside the filesystem
	Within string `json:"within,omitempty"` // the source root relative to the mount point
	Inode  uint64 `json:"inode,omitempty"`  // inode of the mount point directory (sub-mounts)
}

func (m MountID) String() string {
	s := fmt.Sprintf("%s %s", m.FSType, m.Source)
	if m.FSRoot != "/" && m.FSRoot != "" {
		s += " (" + m.FSRoot + ")"
	}
	return s
}

// sameFS compares what was mounted, ignoring the NFS protocol version
// (a share remounted as nfs4 instead of nfs is the same share).
func (m MountID) sameFS(o MountID) bool {
	return fsFamily(m.FSType) == fsFamily(o.FSType) && m.Source == o.Source && m.FSRoot == o.FSRoot
}

func fsFamily(t string) string {
	if t == "nfs4" {
		return "nfs"
	}
	return t
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	point, fsRoot, fsType, source string
}

// readMountInfo parses /proc/self/mountinfo (the kernel's own record of
// what is mounted where, in mount order).
func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		out = append(out, mountInfo{
			fsRoot: unescapeMount(fields[3]), point: unescapeMount(fields[4]),
			fsType: fields[sep+1], source: unescapeMount(fields[sep+2]),
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// under reports whether p is dir or below it (both clean, absolute).
func under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// ReadIdentity returns the identity of the directory root.
func ReadIdentity(root string) (Identity, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return Identity{}, err
	}
	if real, err = filepath.Abs(real); err != nil {
		return Identity{}, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil {
		return Identity{}, err
	}
	mounts, err := readMountInfo()
	if err != nil {
		return Identity{}, fmt.Errorf("read mount table: %w", err)
	}
	// An automounter (autofs) mounts a share when its mount point is first
	// touched: stat every mount point below the root, then read the table
	// again, so what is recorded is the share, not whether it happened to
	// be mounted yet.
	triggered := false
	for _, m := range mounts {
		if m.fsType == "autofs" && under(m.point, real) {
			var mst syscall.Stat_t
			_ = syscall.Stat(m.point, &mst)
			triggered = true
		}
	}
	if triggered {
		if mounts, err = readMountInfo(); err != nil {
			return Identity{}, fmt.Errorf("read mount table: %w", err)
		}
	}
	id := Identity{Inode: st.Ino}
	// The mount holding the root: the last (topmost) mount whose mount
	// point is the longest prefix of the root.
	best := -1
	for i, m := range mounts {
		if under(real, m.point) && (best < 0 || len(m.point) >= len(mounts[best].point)) {
			best = i
		}
	}
	if best >= 0 {
		m := mounts[best]
		within := strings.TrimPrefix(strings.TrimPrefix(real, m.point), "/")
		id.Mount = MountID{FSType: m.fsType, Source: m.source, FSRoot: m.fsRoot, Within: within}
	}
	// Mounts below the root; a later mount on the same point hides the
	// earlier one, so only the last one per point counts.
	byPoint := map[string]MountID{}
	for _, m := range mounts {
		if m.point == real || !under(m.point, real) {
			continue
		}
		if m.fsType == "autofs" {
			// The trigger, not a filesystem: the share mounted on top of
			// it is what counts; if none is, the directory is missing
			// its mount, which the comparison reports.
			continue
		}
		rel := strings.TrimPrefix(m.point, real+"/")
		mid := MountID{Rel: rel, FSType: m.fsType, Source: m.source, FSRoot: m.fsRoot}
		var mst syscall.Stat_t
		if syscall.Stat(m.point, &mst) == nil {
			mid.Inode = mst.Ino
		}
		byPoint[rel] = mid
	}
	for _, m := range byPoint {
		id.Mounts = append(id.Mounts, m)
	}
	slices.SortFunc(id.Mounts, func(a, b MountID) int { return strings.Compare(a.Rel, b.Rel) })
	return id, nil
}

// Compare checks the current identity cur against the recorded one. It
// returns nil when they are the same source, else one line saying what
// changed. hasRecords(rel) reports whether the checkpoint holds files at
// or below rel: a new mount over a directory with records hides them (the
// sub-mount version of an empty mount point), a new mount elsewhere is
// simply new data.
func Compare(rec, cur Identity, hasRecords func(rel string) bool) error {
	if !rec.Mount.sameFS(cur.Mount) || rec.Mount.Within != cur.Mount.Within {
		return fmt.Errorf("the source root is now on %s, not on %s as recorded (an unmounted share, or another one)",
			where(cur.Mount), where(rec.Mount))
	}
	if rec.Inode != cur.Inode {
		return fmt.Errorf("the source root is another directory (inode %d, recorded %d): another share or a recreated directory", cur.Inode, rec.Inode)
	}
	curBy := map[string]MountID{}
	for _, m := range cur.Mounts {
		curBy[m.Rel] = m
	}
	recBy := map[string]bool{}
	for _, r := range rec.Mounts {
		recBy[r.Rel] = true
		c, ok := curBy[r.Rel]
		switch {
		case !ok:
			return fmt.Errorf("%s is no longer mounted (recorded: %s)", r.Rel, r)
		case !c.sameFS(r):
			return fmt.Errorf("%s is now %s, not %s as recorded", r.Rel, c, r)
		case r.Inode != 0 && c.Inode != r.Inode:
			return fmt.Errorf("%s is another directory (inode %d, recorded %d)", r.Rel, c.Inode, r.Inode)
		}
	}
	for _, c := range cur.Mounts {
		if !recBy[c.Rel] && hasRecords(c.Rel) {
			return fmt.Errorf("%s is now a mount (%s) over a directory whose files are recorded", c.Rel, c)
		}
	}
	return nil
}

func where(m MountID) string {
	s := m.String()
	if m.Within != "" {
		s += " at " + m.Within
	}
	return s
}
