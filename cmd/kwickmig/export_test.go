package main

import "fmt"

func formatMtimeForTest(ns int64) string {
	return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9)
}
