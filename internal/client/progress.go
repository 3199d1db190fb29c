package client

import (
	"context"
	"io"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"oras.land/oras-go/v2"
)

// Progress draws a bar for each blob or manifest a transfer reads. A nil *Progress
// draws nothing, which is what the verbs get when stderr is not a terminal or with
// --quiet.
type Progress struct {
	bars *mpb.Progress
	once sync.Once
}

// NewProgress returns a Progress drawing on w, which should be a terminal.
func NewProgress(w io.Writer) *Progress {
	return newProgress(w)
}

func newProgress(w io.Writer, opts ...mpb.ContainerOption) *Progress {
	return &Progress{bars: mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w)}, opts...)...)}
}

// Wait waits for the last bar to be drawn; call it before printing anything else on
// the terminal the bars are drawn on.
func (p *Progress) Wait() {
	if p == nil {
		return
	}
	p.once.Do(p.bars.Wait)
}

// track wraps rc, the content of desc, with a bar.
func (p *Progress) track(desc ocispec.Descriptor, rc io.ReadCloser) io.ReadCloser {
	bar := p.bars.AddBar(desc.Size,
		mpb.BarWidth(32),
		mpb.PrependDecorators(
			decor.Name(barName(desc), decor.WC{C: decor.DindentRight | decor.DextraSpace | decor.DSyncWidth}),
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			decor.OnComplete(decor.Percentage(decor.WCSyncSpace), "done"),
			// the rate, as oras shows it, and the time left while there is some:
			// averages since the bar started, since a read's own duration times the
			// network for a pull but the disk for a push
			decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace),
			decor.OnComplete(decor.Name(" ETA"), ""),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), ""),
		),
	)
	proxy, err := bar.ProxyReader(rc)
	if err != nil { // the bar is already done: nothing to draw
		return rc
	}
	return &trackedReader{ReadCloser: proxy, bar: bar, size: desc.Size}
}

// barName is what the user recognizes a piece of content by: its file name, or its
// short digest and media type.
func barName(desc ocispec.Descriptor) string {
	if title := desc.Annotations[ocispec.AnnotationTitle]; title != "" {
		return title
	}
	return desc.Digest.Encoded()[:12] + " " + desc.MediaType
}

// trackedReader ends its bar on Close: complete when everything was read, aborted
// otherwise, so that Wait never waits for a transfer that failed.
type trackedReader struct {
	io.ReadCloser
	bar  *mpb.Bar
	size int64
}

func (r *trackedReader) Close() error {
	if r.bar.Current() == r.size {
		r.bar.SetTotal(-1, true)
	} else {
		r.bar.Abort(false)
	}
	return r.ReadCloser.Close()
}

// trackedSource is a source whose reads draw bars.
type trackedSource struct {
	oras.ReadOnlyGraphTarget
	progress *Progress
}

// withProgress returns src with a bar for each piece of content read from it, or src
// itself when p is nil.
func withProgress(src oras.ReadOnlyGraphTarget, p *Progress) oras.ReadOnlyGraphTarget {
	if p == nil {
		return src
	}
	return trackedSource{ReadOnlyGraphTarget: src, progress: p}
}

func (s trackedSource) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.ReadOnlyGraphTarget.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return s.progress.track(desc, rc), nil
}
