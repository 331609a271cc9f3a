package pgcopy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// Part is one unit of parallel work: a whole table, or one ctid page range
// of a table larger than --split-larger-than.
type Part struct {
	Table *Table
	Index int   // 0-based
	Count int   // parts of this table
	From  int64 // first page (split tables)
	To    int64 // page after the last; 0 = to the end of the table

	state partState
}

// Key identifies the part in the checkpoint and the export.
func (p *Part) Key() string { return p.Table.QName() + "#" + strconv.Itoa(p.Index) }

func (p *Part) String() string {
	if p.Count == 1 {
		return p.Table.QName()
	}
	return fmt.Sprintf("%s part %d/%d", p.Table.QName(), p.Index+1, p.Count)
}

// estSize estimates the part's share of the table's bytes on disk.
func (p *Part) estSize(blockSize int64) int64 {
	switch {
	case p.Count == 1:
		return p.Table.Size
	case p.To > 0:
		return (p.To - p.From) * blockSize
	default:
		return max(p.Table.Size-p.From*blockSize, 0)
	}
}

// schedule orders parts largest first (longest-processing-time first keeps
// every job busy until the end); parts of one table stay in page order.
func schedule(tables []*Table, skip func(*Part) bool) []*Part {
	var out []*Part
	for _, t := range tables {
		for _, p := range t.Parts {
			if !skip(p) {
				out = append(out, p)
			}
		}
	}
	const bs = 8192
	sort.SliceStable(out, func(i, j int) bool { return out[i].estSize(bs) > out[j].estSize(bs) })
	return out
}

// sourceSQL is the COPY … TO STDOUT that reads the part.
func (p *Part) sourceSQL() string {
	t := p.Table
	if p.Count == 1 {
		return "COPY " + t.QName() + " " + t.columnList() + " TO STDOUT " + t.copyFormat()
	}
	cols := strings.TrimSuffix(strings.TrimPrefix(t.columnList(), "("), ")")
	where := fmt.Sprintf("ctid >= '(%d,0)'::tid", p.From)
	if p.To > 0 {
		where += fmt.Sprintf(" AND ctid < '(%d,0)'::tid", p.To)
	}
	return "COPY (SELECT " + cols + " FROM ONLY " + t.QName() + " WHERE " + where + ") TO STDOUT " + t.copyFormat()
}

// targetSQL is the COPY … FROM STDIN that loads the part.
func (p *Part) targetSQL(freeze bool) string {
	t := p.Table
	format := t.copyFormat()
	if freeze {
		format = format[:len(format)-1] + ", FREEZE)"
	}
	return "COPY " + t.QName() + " " + t.columnList() + " FROM STDIN " + format
}

// pageRange is a stored split: [From, To) pages, To 0 = open end.
type pageRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// splitRanges divides a table of size bytes into page ranges of about
// split bytes. The last range is open-ended.
func splitRanges(size, split, blockSize int64) []pageRange {
	if split <= 0 || size <= split || blockSize <= 0 {
		return []pageRange{{}}
	}
	pages := (size + blockSize - 1) / blockSize
	n := (size + split - 1) / split
	step := (pages + n - 1) / n
	var out []pageRange
	for from := int64(0); from < pages; from += step {
		out = append(out, pageRange{From: from, To: from + step})
	}
	out[len(out)-1].To = 0
	return out
}

// planParts gives each table its parts. When resuming, a table planned by
// an earlier run keeps that run's ranges, so finished ranges stay valid.
func planParts(ck *checkpoint.DB, section string, tables []*Table, split, blockSize int64, resume bool) error {
	for _, t := range tables {
		var ranges []pageRange
		if resume {
			if _, err := ck.GetJSON(section, "plan/"+t.QName(), &ranges); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
		if len(ranges) == 0 {
			ranges = splitRanges(t.Size, split, blockSize)
		}
		t.Parts = t.Parts[:0]
		for i, r := range ranges {
			t.Parts = append(t.Parts, &Part{Table: t, Index: i, Count: len(ranges), From: r.From, To: r.To})
		}
	}
	return nil
}

// savePlans records the tables' ranges for a later --resume.
func savePlans(ck *checkpoint.DB, section string, tables []*Table) error {
	for _, t := range tables {
		ranges := make([]pageRange, len(t.Parts))
		for i, p := range t.Parts {
			ranges[i] = pageRange{From: p.From, To: p.To}
		}
		if err := ck.PutJSON(section, "plan/"+t.QName(), ranges); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return nil
}
