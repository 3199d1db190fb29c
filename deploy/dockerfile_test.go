package deploy_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one instruction of a Dockerfile, its continuation lines joined.
type instruction struct {
	stage int // the index of the FROM it follows
	op    string
	args  string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out   []instruction
		line  string
		stage = -1
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if line == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line += cont + " "
			continue
		}
		line += l
		op, args, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		if op == "FROM" {
			stage++
		}
		out = append(out, instruction{stage: stage, op: op, args: strings.TrimSpace(args)})
		line = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The Dockerfile's build stage builds a static binary: its go build, run here with
// the same flags and environment (the ARGs at their defaults), makes a binary with no
// dynamic loader that runs. The final stage runs it as a user other than root, keeps
// /data in a volume and checks /healthz.
func TestDockerfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds graft")
	}
	steps := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	args := map[string]string{}
	var build string
	final := map[string][]string{}
	last := steps[len(steps)-1].stage
	for _, s := range steps {
		if s.op == "ARG" {
			name, def, _ := strings.Cut(s.args, "=")
			args[name] = def
		}
		if s.op == "RUN" && strings.Contains(s.args, "go build") {
			build = s.args
		}
		if s.stage == last {
			final[s.op] = append(final[s.op], s.args)
		}
	}
	if build == "" {
		t.Fatal("the Dockerfile has no RUN of go build")
	}
	if last < 1 {
		t.Error("the Dockerfile has one stage: the toolchain would ship with graft")
	}

	// The build, with /out where the test wants it.
	out := t.TempDir()
	cmdline := regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`).ReplaceAllStringFunc(build, func(v string) string {
		name := strings.Trim(v, "${}")
		return args[name]
	})
	cmdline = strings.ReplaceAll(cmdline, "/out/", out+"/")
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = ".."
	cmd.Env = os.Environ()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build, %s: %v\n%s", cmdline, err, b)
	}
	bin := filepath.Join(out, "graft")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the build made no ELF binary: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is linked dynamically: it would not run on an image without a C library")
		}
	}
	f.Close()
	v, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "graft "+args["VERSION"]+" ") {
		t.Errorf("the built graft's version: %q (%v), want graft %s", v, err, args["VERSION"])
	}

	if u := final["USER"]; len(u) == 0 || strings.HasPrefix(u[0], "root") || strings.HasPrefix(u[0], "0") {
		t.Errorf("the image runs as %q, want a user other than root", u)
	}
	if vol := strings.Join(final["VOLUME"], " "); !strings.Contains(vol, "/data") {
		t.Errorf("VOLUME %q, want /data", vol)
	}
	if env := strings.Join(final["ENV"], " "); !strings.Contains(env, "GRAFT_DATA_DIR=/data") {
		t.Errorf("ENV %q does not keep the data dir in /data", env)
	}
	if hc := strings.Join(final["HEALTHCHECK"], " "); !strings.Contains(hc, "/healthz") {
		t.Errorf("HEALTHCHECK %q does not ask /healthz", hc)
	}
	if exp := strings.Join(final["EXPOSE"], " "); exp != "5000" {
		t.Errorf("EXPOSE %q, want 5000", exp)
	}
}
