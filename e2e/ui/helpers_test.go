// Package uie2e drives graft's web view in a real browser: Debian's chromium,
// headless, through the DevTools protocol (chromedp), against a real `graft serve`
// holding content pushed by the real clients (oras, cosign) and oras-go.
//
// Every page a test visits is saved as a screenshot in one directory per run, whose
// path the test logs: look at them.
package uie2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/graft-registry/graft/internal/clienttest"
)

// chromiumPath is the browser the tests drive: GRAFT_CHROMIUM, else chromium on the
// PATH (scripts/test.sh installs Debian's). A test that needs it fails without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GRAFT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium to drive: install it (apt-get install -y chromium) or set GRAFT_CHROMIUM")
	return ""
}

// tab is a browser tab of a test.
type tab struct {
	t   *testing.T
	ctx context.Context
	// dialogs counts the JavaScript dialogs (alert, confirm) the pages opened.
	dialogs *int32
	mu      *sync.Mutex
}

// newTab starts a headless chromium of the test's own, with a fresh profile, that
// talks to nothing but the test's servers, and opens a tab in it 1280 pixels wide.
// extra are more options of the browser.
func newTab(t *testing.T, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("lang", "en-US"),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root otherwise
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// the first run starts the browser, which lives as long as that run's context: no
	// timeout on it
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tb := &tab{t: t, ctx: ctx, dialogs: new(int32), mu: &sync.Mutex{}}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			*tb.dialogs++
			tb.mu.Unlock()
			t.Logf("the page opened a dialog: %s %q", ev.Type, ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	tb.do(chromedp.EmulateViewport(1280, 900))
	return tb
}

// dialogCount is how many dialogs the pages opened so far.
func (tb *tab) dialogCount() int32 {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return *tb.dialogs
}

// do runs actions, each step bounded so that a page that never comes fails the test
// instead of hanging it.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v (at %s)", err, tb.location())
	}
}

func run[T any](tb *tab, action chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		tb.t.Fatalf("browser: %v (at %s)", err, tb.location())
	}
	return v
}

func (tb *tab) location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// open navigates to url and waits for its main element.
func (tb *tab) open(url string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("main")))
}

// click clicks what sel finds and waits for the page it leads to.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		tb.t.Fatalf("clicking %s: %v (at %s)", sel, err, tb.location())
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS("main")))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	return run(tb, chromedp.Evaluate[T](expr))
}

// text is the visible text of what sel finds first.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return run(tb, chromedp.Text(chromedp.CSS(sel)))
}

// theme makes the pages follow a dark or a light system theme.
func (tb *tab) theme(dark bool) {
	tb.t.Helper()
	v := "light"
	if dark {
		v = "dark"
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}},
	}); err != nil {
		tb.t.Fatal(err)
	}
}

var (
	shotsOnce sync.Once
	shotsDir  string
)

// screenshot saves the whole page as NAME.png in the run's screenshot directory.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	shotsOnce.Do(func() {
		shotsDir = os.Getenv("GRAFT_UI_SCREENSHOTS")
		if shotsDir == "" {
			var err error
			if shotsDir, err = os.MkdirTemp("", "graft-ui-screenshots-"); err != nil {
				tb.t.Fatal(err)
			}
		}
		os.MkdirAll(shotsDir, 0o755)
	})
	png := run(tb, chromedp.FullScreenshot(100))
	path := filepath.Join(shotsDir, tb.t.Name()[strings.LastIndexByte(tb.t.Name(), '/')+1:]+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: %s", path)
	return path
}

// client runs a real client in dir with a home of the test's own, and returns what it
// printed on standard output; it fails the test when the client fails.
func client(t *testing.T, home, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := clienttest.Command(t, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), clienttest.HomeEnv(home)...), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// repository opens repo of the registry at addr with oras-go, as user (none when
// "").
func repository(t *testing.T, addr, repo, user, password string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(addr + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	if user != "" {
		r.Client = &auth.Client{Credential: auth.StaticCredential(addr, auth.Credential{Username: user, Password: password})}
	}
	return r
}

// pushImage pushes a small image of os/arch to r with an entrypoint, an environment
// and labels, and returns its descriptor with its platform.
func pushImage(t *testing.T, r *remote.Repository, os, arch, tag string) ocispec.Descriptor {
	t.Helper()
	ctx := t.Context()
	config, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: os, Architecture: arch},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/bin/app"}, Cmd: []string{"--serve"},
			Env:    []string{"PATH=/usr/local/bin:/usr/bin", "APP_MODE=production"},
			Labels: map[string]string{"org.opencontainers.image.source": "https://example.com/app"}},
		RootFS:  ocispec.RootFS{Type: "layers"},
		History: []ocispec.History{{CreatedBy: "COPY app /bin/app"}, {CreatedBy: "ENTRYPOINT [\"/bin/app\"]", EmptyLayer: true}},
	})
	layer := []byte(fmt.Sprintf("the app for %s/%s, %d", os, arch, time.Now().UnixNano()))
	cd, err := oras.PushBytes(ctx, r, ocispec.MediaTypeImageConfig, config)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := oras.PushBytes(ctx, r, ocispec.MediaTypeImageLayerGzip, layer)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cd, Layers: []ocispec.Descriptor{ld}})
	desc := pushManifest(t, r, ocispec.MediaTypeImageManifest, m, tag)
	desc.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	return desc
}

// pushIndex pushes an index of children to r under tag.
func pushIndex(t *testing.T, r *remote.Repository, tag string, children ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	m, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: children})
	return pushManifest(t, r, ocispec.MediaTypeImageIndex, m, tag)
}

func pushManifest(t *testing.T, r *remote.Repository, mediaType string, m []byte, tag string) ocispec.Descriptor {
	t.Helper()
	var (
		desc ocispec.Descriptor
		err  error
	)
	if tag == "" {
		desc, err = oras.PushBytes(t.Context(), r, mediaType, m)
	} else {
		desc, err = oras.TagBytes(t.Context(), r, mediaType, m, tag)
	}
	if err != nil {
		t.Fatalf("pushing a manifest to %s: %v", r.Reference, err)
	}
	return desc
}

// exists reports whether manifest d is in r.
func exists(t *testing.T, r *remote.Repository, d digest.Digest) bool {
	t.Helper()
	_, err := r.Resolve(t.Context(), d.String())
	return err == nil
}
