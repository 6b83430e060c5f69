// ORACLE, not part of tagpilot: decides generated policy cases with the Go code current Flux
// runs, so that tagpilot's answers can be checked against it (crates/policy/tests/flux_oracle.rs
// reads the recorded output, crates/policy/tests/data/flux_oracle.tsv).
//
// What decides: Masterminds/semver (the version in GOPATH; run.sh says which), the tag rule of
// fluxcd/pkg version.ParseVersion, the Latest loops of image-reflector-controller's SemVer and
// Numerical policies, and Go's strconv.ParseFloat — each restated here from their sources,
// nothing else. Cases are generated from a fixed seed, so a rerun gives the same file.
//
// Output, one case per line: kind \t argument \t tags (comma-separated, in Flux's stored order)
// \t answer, where answer is the tag, "invalid" (the range is not a constraint), "none" (no tag
// qualifies), "error" (a numeric tag does not parse), "tie:<tag>" (the winner ties with another
// tag: Flux keeps the first, tagpilot breaks ties deterministically) or "nan:<tag>".
package main

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// fluxcd/pkg version.ParseVersion.
func parseVersion(v string) (*semver.Version, error) {
	if len(strings.SplitN(v, ".", 3)) != 3 {
		return nil, semver.ErrInvalidSemVer
	}
	return semver.NewVersion(v)
}

func semverLatest(rng string, tags []string) string {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "invalid"
	}
	var latest *semver.Version
	for _, t := range tags {
		if v, err := parseVersion(t); err == nil {
			if c.Check(v) && (latest == nil || v.GreaterThan(latest)) {
				latest = v
			}
		}
	}
	if latest == nil {
		return "none"
	}
	for _, t := range tags {
		if v, err := parseVersion(t); err == nil && c.Check(v) && v.Equal(latest) && t != latest.Original() {
			return "tie:" + latest.Original()
		}
	}
	return latest.Original()
}

func numericalLatest(order string, tags []string) string {
	var latest string
	var pv float64
	nan := false
	values := map[float64][]string{}
	for i, t := range tags {
		cv, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return "error"
		}
		if math.IsNaN(cv) {
			nan = true
		}
		values[cv] = append(values[cv], t)
		switch {
		case i == 0:
		case order == "asc" && cv < pv, order == "desc" && cv > pv:
			continue
		}
		latest = t
		pv = cv
	}
	if nan {
		return "nan:" + latest
	}
	if len(values[pv]) > 1 {
		return "tie:" + latest
	}
	return latest
}

var ranges = []string{
	">=1.0.0", ">=3.0.0-0", "^1.x-0", "~1.2", "1.2 - 1.4", ">=1.0.0 1.2 - 1.4",
	">=1.0.0, 1.2 - 1.4", ">=1.0.0 || 1.2 - 1.4", "1.2 - 1.4 >=1.3", "1.2 - 1.4, >=1.3",
	"1.2 -  1.4", "1.0.0  1.2 - 1.4", ">=2.0.0-rc <3", "<2.0.0", "*", "1.x", ">1.2", "<=2",
	"!=1.5.0", ">=1.0.0 <2.0.0", "^2", "~2.0.0-0", ">=0.0.0-0", "=1.5.0", "1.5.0 - 2",
	">=1.0.0 1.5 - 2", "x", ">=1.2.3-rc.1", "~>1.4", "1.2 - 1.4 || >=3",
}

var tagPool = []string{
	"1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.4.0", "1.4.5", "1.5.0", "1.5.0-rc.1", "2.0.0",
	"2.0.0-rc.1", "2.1.0", "3.0.0", "3.1.0", "v1.3.7", "v2.2.2", "01.02.03", "v2025.07.03",
	"3.1-rc.2", "v2-rc.1.2", "v1.5+build.7", "1.4-beta.1", "2-rc.0.1", "1.2", "v1", "1.2.3.4",
	"1.2.beta", "1.2-5", "V1.2.3", "latest", "1.0.0-rc.01", "1.0.0-rc.1", "3.0.0-alpha",
	"1-a.b.c", "0.9.9", "10.0.0", "1.10.0", "1.9.0", "4.0.0+meta", "1.6-x.y", "v3.1-rc.3",
}

var numbers = []string{
	"1", "2", "10", "3.5", "1e3", "1_000", "1e1_0", "1_000.5", "_1", "1__0", "1_", "+5", "-3",
	"0x1p4", "0x_1p4", "20260101", "2026_01_02", "7", "42", "1.5e2", "100", "9", "1_0", "3",
}

func pick(r *rand.Rand, pool []string, n int) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		t := pool[r.Intn(len(pool))]
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	// Flux stores (and ranks) the listing in descending byte order.
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func main() {
	r := rand.New(rand.NewSource(13))
	for _, rng := range ranges {
		for i := 0; i < 8; i++ {
			tags := pick(r, tagPool, 3+r.Intn(8))
			fmt.Printf("semver\t%s\t%s\t%s\n", rng, strings.Join(tags, ","), semverLatest(rng, tags))
		}
	}
	// The issue's own example.
	ex := []string{"3.1-rc.2", "3.0.0"}
	fmt.Printf("semver\t%s\t%s\t%s\n", ">=3.0.0-0", strings.Join(ex, ","), semverLatest(">=3.0.0-0", ex))
	for i := 0; i < 120; i++ {
		order := []string{"asc", "desc"}[i%2]
		tags := pick(r, numbers, 2+r.Intn(5))
		fmt.Printf("numerical\t%s\t%s\t%s\n", order, strings.Join(tags, ","), numericalLatest(order, tags))
	}
}
