// Renders the templates in cases.txt with Go's text/template against the same data as
// tests/go_semantics.rs builds, and writes expected.json. Run: go run main.go > expected.json
// (Go is only needed to regenerate the fixture; the Rust test reads expected.json.)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"
)

type NamespacedName struct{ Namespace, Name string }

func (n NamespacedName) String() string { return n.Namespace + "/" + n.Name }

type TypeMeta struct{ APIVersion, Kind string }
type NameMeta struct{ Name, Namespace string }
type ResourceIdentifier struct {
	TypeMeta
	NameMeta
}
type ObjectIdentifier struct{ ResourceIdentifier }

type Change struct{ OldValue, NewValue, Setter string }

type ImageRef struct {
	full, Name, Registry, Repository, Tag, Identifier string
	Policy                                           NamespacedName
}

func (i ImageRef) String() string { return i.full }

type FileResult struct{ Objects map[ObjectIdentifier][]ImageRef }

type Updated struct {
	Files   map[string]FileResult
	Objects map[ObjectIdentifier][]ImageRef
	Images  []ImageRef
}

type Changed struct {
	FileChanges map[string]map[ObjectIdentifier][]Change
	Objects     map[ObjectIdentifier][]Change
	Changes     []Change
}

type Data struct {
	AutomationObject NamespacedName
	Values           map[string]string
	Changed          Changed
	Updated          Updated
}

func oid(api, kind, name string) ObjectIdentifier {
	return ObjectIdentifier{ResourceIdentifier{TypeMeta{api, kind}, NameMeta{name, "default"}}}
}

func main() {
	podinfo := ImageRef{"ghcr.io/stefanprodan/podinfo:5.0.3", "ghcr.io/stefanprodan/podinfo", "ghcr.io", "stefanprodan/podinfo", "5.0.3", "5.0.3", NamespacedName{"flux-system", "podinfo"}}
	golang := ImageRef{"golang:1.16.0", "index.docker.io/library/golang", "index.docker.io", "library/golang", "1.16.0", "1.16.0", NamespacedName{"flux-system", "golang"}}
	dep, cron, helm := oid("apps/v1", "Deployment", "podinfo"), oid("apps/v1", "CronJob", "builder"), oid("helm.toolkit.fluxcd.io/v2", "HelmRelease", "podinfo")
	cDep := Change{"ghcr.io/stefanprodan/podinfo:5.0.0", "ghcr.io/stefanprodan/podinfo:5.0.3", "flux-system:podinfo"}
	cCron := Change{"1.15", "1.16.0", "flux-system:golang:tag"}
	cHelm := Change{"5.0.0", "5.0.3", "flux-system:podinfo:tag"}
	d := Data{
		AutomationObject: NamespacedName{"flux-system", "flux-system"},
		Values:           map[string]string{"env": "prod", "team": "platform"},
		Changed: Changed{
			FileChanges: map[string]map[ObjectIdentifier][]Change{
				"apps/podinfo.yaml": {dep: {cDep}, cron: {cCron}},
				"apps/helm.yaml":    {helm: {cHelm}},
			},
			Objects: map[ObjectIdentifier][]Change{dep: {cDep}, cron: {cCron}, helm: {cHelm}},
			Changes: []Change{cHelm, cDep, cCron},
		},
		Updated: Updated{
			Files: map[string]FileResult{
				"apps/podinfo.yaml": {map[ObjectIdentifier][]ImageRef{dep: {podinfo}, cron: {golang}}},
				"apps/helm.yaml":    {map[ObjectIdentifier][]ImageRef{helm: {podinfo}}},
			},
			Objects: map[ObjectIdentifier][]ImageRef{dep: {podinfo}, cron: {golang}, helm: {podinfo}},
			Images:  []ImageRef{podinfo, golang},
		},
	}
	funcs := template.FuncMap{
		"upper": strings.ToUpper, "lower": strings.ToLower, "title": strings.Title, "trim": strings.TrimSpace,
		"trimPrefix": func(a, s string) string { return strings.TrimPrefix(s, a) },
		"join": func(sep string, l []interface{}) string {
			var out []string
			for _, x := range l {
				out = append(out, fmt.Sprint(x))
			}
			return strings.Join(out, sep)
		},
		"list": func(a ...interface{}) []interface{} { return a },
		"sortAlpha": func(l []interface{}) []interface{} {
			var s []string
			for _, x := range l {
				s = append(s, fmt.Sprint(x))
			}
			sort.Strings(s)
			var out []interface{}
			for _, x := range s {
				out = append(out, x)
			}
			return out
		},
	}
	out := map[string]string{}
	f, err := os.Open("cases.txt")
	if err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var src string
		if err := json.Unmarshal([]byte(line), &src); err != nil {
			panic(err)
		}
		t, err := template.New("msg").Funcs(funcs).Parse(src)
		if err != nil {
			out[src] = "PARSE ERROR: " + err.Error()
			continue
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			out[src] = "EXEC ERROR: " + err.Error()
			continue
		}
		out[src] = b.String()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(out)
}
