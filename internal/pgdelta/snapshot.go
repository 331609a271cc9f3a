package pgdelta

import (
	"fmt"
	"strconv"
	"strings"
)

// snapshot is a parsed pg_snapshot ("xmin:xmax:xip,xip,…"), with
// pg_visible_in_snapshot's rule: a transaction id is visible when it is below
// xmin, or below xmax and not in the in-progress list.
type snapshot struct {
	xmin, xmax uint64
	xip        map[uint64]struct{}
	text       string
}

// emptySnapshot sees no transaction: the "previous tick" of a first offline
// export, which therefore contains every change logged so far.
const emptySnapshot = "1:1:"

func parseSnapshot(s string) (snapshot, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return snapshot{}, fmt.Errorf("invalid snapshot %q: want xmin:xmax:xip-list", s)
	}
	var sn snapshot
	var err error
	if sn.xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return snapshot{}, fmt.Errorf("invalid snapshot %q: %v", s, err)
	}
	if sn.xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return snapshot{}, fmt.Errorf("invalid snapshot %q: %v", s, err)
	}
	if sn.xmin > sn.xmax {
		return snapshot{}, fmt.Errorf("invalid snapshot %q: xmin > xmax", s)
	}
	if parts[2] != "" {
		sn.xip = map[uint64]struct{}{}
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return snapshot{}, fmt.Errorf("invalid snapshot %q: %v", s, err)
			}
			sn.xip[v] = struct{}{}
		}
	}
	sn.text = strings.TrimSpace(s)
	return sn, nil
}

// visible is pg_visible_in_snapshot(txid, sn).
func (sn snapshot) visible(txid uint64) bool {
	if txid < sn.xmin {
		return true
	}
	if txid >= sn.xmax {
		return false
	}
	_, running := sn.xip[txid]
	return !running
}
