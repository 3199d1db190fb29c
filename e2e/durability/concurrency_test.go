package durability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// together runs fn(0) … fn(n-1) in goroutines released at once, and returns their
// errors. The functions report through their errors: only the test's goroutine may
// stop the test.
func together(n int, fn func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func reportErrors(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// tryStatus sends a request and returns an error unless the answer has one of
// statuses.
func (a *api) tryStatus(method, path string, body []byte, statuses []int, hdr ...string) (*apitest.Response, error) {
	r, err := a.srv.Try(context.Background(), method, path, bytes.NewReader(body), hdr...)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(statuses, r.Status) {
		return r, fmt.Errorf("%s %s: got %s, want %v", method, path, r, statuses)
	}
	return r, nil
}

// tryUpload pushes data to repo, in one request or in chunks of size chunk.
func (a *api) tryUpload(repo string, data []byte, chunk int) error {
	d := digest.FromBytes(data)
	if chunk == 0 {
		_, err := a.tryStatus(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
			[]int{http.StatusCreated}, "Content-Type", "application/octet-stream")
		return err
	}
	r, err := a.tryStatus(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, []int{http.StatusAccepted})
	if err != nil {
		return err
	}
	loc := r.Header.Get("Location")
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		r, err := a.tryStatus(http.MethodPatch, loc, data[off:end], []int{http.StatusAccepted},
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		if err != nil {
			return err
		}
		loc = r.Header.Get("Location")
	}
	_, err = a.tryStatus(http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil, []int{http.StatusCreated})
	return err
}

// TestConcurrentSameBlob uploads one blob many times at once, monolithically and in
// chunks, to one repository and to several: every upload succeeds, the blob store
// holds it once, and every repository serves it.
func TestConcurrentSameBlob(t *testing.T) {
	for _, tc := range []struct {
		name  string
		repos []string
	}{
		{"one repository", []string{"same"}},
		{"several repositories", []string{"r0", "r1", "r2", "r3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := graftest.Start(t)
			a := newAPI(s)
			defer a.close()
			// Large enough that the uploads overlap, and crosses the blob store's
			// 1 MiB copy buffer.
			data := randomBytes(rand.New(rand.NewPCG(1, uint64(len(tc.repos)))), 3<<20+123)
			errs := together(8, func(i int) error {
				chunk := 0
				if i%2 == 1 {
					chunk = 512 << 10
				}
				return a.tryUpload(tc.repos[i%len(tc.repos)], data, chunk)
			})
			reportErrors(t, errs)
			for _, repo := range tc.repos {
				a.checkBlob(t, repo, data)
			}
			files := blobFiles(t, s.DataDir)
			if len(files) != 1 || files[digest.FromBytes(data)] != int64(len(data)) {
				t.Errorf("the blob store holds %v, want the blob once", files)
			}
			if dirs := uploadDirs(t, s.DataDir); len(dirs) != 0 {
				t.Errorf("upload sessions left behind: %q", dirs)
			}
			if got := a.srv.Catalog(t); !slices.Equal(got, tc.repos) {
				t.Errorf("catalog %q, want %q", got, tc.repos)
			}
			checkNoPanic(t, s)
		})
	}
}

// TestConcurrentPatches sends PATCHes to one upload session at once. With a
// Content-Range they race for the same offset: exactly one wins and the others get 416
// with the upload's new Range. Without one each is appended whole, one after the
// other: the Range each answer gives says where its chunk went, and the content put
// together in that order is what the upload commits.
func TestConcurrentPatches(t *testing.T) {
	s := graftest.Start(t)
	a := newAPI(s)
	defer a.close()
	rng := rand.New(rand.NewPCG(2, 2))
	loc := a.srv.StartUpload(t, "patches")

	const racers = 6
	var content []byte
	for k := range 5 {
		chunk := randomBytes(rng, 64<<10+k)
		start, end := int64(len(content)), int64(len(content)+len(chunk))
		results := make([]*apitest.Response, racers)
		errs := together(racers, func(i int) error {
			var err error
			results[i], err = a.tryStatus(http.MethodPatch, loc, chunk,
				[]int{http.StatusAccepted, http.StatusRequestedRangeNotSatisfiable},
				"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", start, end-1))
			return err
		})
		reportErrors(t, errs)
		won := 0
		for _, r := range results {
			if r == nil {
				continue
			}
			if r.Status == http.StatusAccepted {
				won++
			}
			// Whether it won or lost, the upload now ends where the chunk does.
			if got := r.Header.Get("Range"); got != apitest.UploadRange(end) {
				t.Errorf("chunk %d: an answer %d has Range %q, want %q", k, r.Status, got, apitest.UploadRange(end))
			}
			if r.Header.Get("Location") == "" {
				t.Errorf("chunk %d: an answer %d has no Location", k, r.Status)
			}
		}
		if won != 1 {
			t.Fatalf("chunk %d: %d of %d PATCHes at offset %d were accepted, want exactly 1", k, won, racers, start)
		}
		content = append(content, chunk...)
	}

	// Appends without a Content-Range, of different sizes.
	chunks := make([][]byte, 8)
	for i := range chunks {
		chunks[i] = randomBytes(rng, 32<<10+1000*i)
	}
	ends := make([]int64, len(chunks))
	reportErrors(t, together(len(chunks), func(i int) error {
		r, err := a.tryStatus(http.MethodPatch, loc, chunks[i], []int{http.StatusAccepted}, "Content-Type", "application/octet-stream")
		if err != nil {
			return err
		}
		size, _, err := uploadEnd(r.Header.Get("Range"))
		ends[i] = size
		return err
	}))
	if t.Failed() {
		t.FailNow()
	}
	order := make([]int, len(chunks))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool { return ends[order[x]] < ends[order[y]] })
	at := int64(len(content))
	for _, i := range order {
		at += int64(len(chunks[i]))
		if ends[i] != at {
			t.Fatalf("the appends overlap or leave gaps: chunk %d (%d bytes) ends at %d, want %d (ends %v)", i, len(chunks[i]), ends[i], at, ends)
		}
		content = append(content, chunks[i]...)
	}
	d := digest.FromBytes(content)
	apitest.WantStatus(t, "PUT", a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil), http.StatusCreated)
	a.checkBlob(t, "patches", content)
	checkNoPanic(t, s)
}

// TestConcurrentTagMoves moves one tag between manifests from many clients at once:
// the tag ends on one of them, served intact, and listed once.
func TestConcurrentTagMoves(t *testing.T) {
	s := graftest.Start(t)
	a := newAPI(s)
	defer a.close()
	layer := []byte("a shared layer")
	a.srv.PushBlob(t, "moves", layer)
	manifests := map[digest.Digest][]byte{}
	var bodies [][]byte
	for i := range 4 {
		config := imageConfig("move " + strconv.Itoa(i))
		a.srv.PushBlob(t, "moves", config)
		m := apitest.ImageManifest(apitest.NewBlob(ocispec.MediaTypeImageConfig, config).Desc,
			[]ocispec.Descriptor{apitest.NewBlob(ocispec.MediaTypeImageLayer, layer).Desc}, "", nil)
		a.putManifest(t, "moves", digest.FromBytes(m).String(), ocispec.MediaTypeImageManifest, m)
		manifests[digest.FromBytes(m)] = m
		bodies = append(bodies, m)
	}
	reportErrors(t, together(8, func(i int) error {
		for j := range 10 {
			m := bodies[(i+j)%len(bodies)]
			if _, err := a.tryStatus(http.MethodPut, "/v2/moves/manifests/moving", m, []int{http.StatusCreated},
				"Content-Type", ocispec.MediaTypeImageManifest); err != nil {
				return err
			}
		}
		return nil
	}))
	r := a.getManifest(t, "moves", "moving")
	if r == nil {
		t.Fatal("the moved tag does not resolve")
	}
	d := digest.FromBytes(r.Body)
	if !bytes.Equal(manifests[d], r.Body) {
		t.Errorf("the moved tag names %s, which is none of the manifests", d)
	}
	head := a.srv.Do(t, http.MethodHead, "/v2/moves/manifests/moving", nil)
	if head.Status != http.StatusOK || head.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD of the moved tag: %s, want %s", head, d)
	}
	if tags := a.srv.Tags(t, "moves"); !slices.Equal(tags, []string{"moving"}) {
		t.Errorf("tags %q, want the moved tag once", tags)
	}
	for d, m := range manifests {
		if r := a.getManifest(t, "moves", d.String()); r == nil || !bytes.Equal(r.Body, m) {
			t.Errorf("manifest %s does not read back after the moves", d)
		}
	}
	checkNoPanic(t, s)
}

// TestConcurrentPutDelete pushes and deletes one manifest at once, while a referrer of
// it is pushed and it is read by tag, many times over. Every request gets a clean
// answer, and the end state is one of the orders the requests could have run in:
// the manifest is there with its tag, or gone with it, and the referrers API lists
// exactly the referrers that are there.
func TestConcurrentPutDelete(t *testing.T) {
	s := graftest.Start(t)
	a := newAPI(s)
	defer a.close()
	const repo = "putdelete"
	config, layer := imageConfig("put and delete"), []byte("layer")
	a.srv.PushBlob(t, repo, config)
	a.srv.PushBlob(t, repo, layer)
	a.srv.PushBlob(t, repo, ocispec.DescriptorEmptyJSON.Data)
	m := apitest.ImageManifest(apitest.NewBlob(ocispec.MediaTypeImageConfig, config).Desc,
		[]ocispec.Descriptor{apitest.NewBlob(ocispec.MediaTypeImageLayer, layer).Desc}, "", nil)
	d := digest.FromBytes(m)
	subject := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(m))}

	for it := range 24 {
		tag := "t" + strconv.Itoa(it)
		// Start with the manifest there on odd rounds, gone on even ones.
		if it%2 == 1 {
			a.putManifest(t, repo, d.String(), ocispec.MediaTypeImageManifest, m)
		} else if r := a.srv.Do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String(), nil); r.Status != http.StatusAccepted && r.Status != http.StatusNotFound {
			t.Fatalf("DELETE before round %d: %s", it, r)
		}
		var rm ocispec.Manifest
		json.Unmarshal(apitest.ImageManifest(ocispec.DescriptorEmptyJSON, []ocispec.Descriptor{apitest.NewBlob(ocispec.MediaTypeImageLayer, layer).Desc},
			sigType, subject), &rm)
		rm.Annotations = map[string]string{"round": tag}
		ref, err := json.Marshal(rm)
		if err != nil {
			t.Fatal(err)
		}
		refDigest := digest.FromBytes(ref)

		var deleteStatus int
		errs := together(4, func(i int) error {
			switch i {
			case 0:
				_, err := a.tryStatus(http.MethodPut, "/v2/"+repo+"/manifests/"+d.String()+"?tag="+tag, m,
					[]int{http.StatusCreated}, "Content-Type", ocispec.MediaTypeImageManifest)
				return err
			case 1:
				r, err := a.tryStatus(http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String(), nil,
					[]int{http.StatusAccepted, http.StatusNotFound})
				if err == nil {
					deleteStatus = r.Status
				}
				return err
			case 2:
				_, err := a.tryStatus(http.MethodPut, "/v2/"+repo+"/manifests/"+refDigest.String(), ref,
					[]int{http.StatusCreated}, "Content-Type", ocispec.MediaTypeImageManifest)
				return err
			default:
				for range 5 {
					r, err := a.tryStatus(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil, []int{http.StatusOK, http.StatusNotFound})
					if err != nil {
						return err
					}
					if r.Status == http.StatusOK && !bytes.Equal(r.Body, m) {
						return fmt.Errorf("GET by tag during the race: %d bytes that are not the manifest", len(r.Body))
					}
				}
				return nil
			}
		})
		reportErrors(t, errs)
		if t.Failed() {
			t.FailNow()
		}

		got := a.getManifest(t, repo, d.String())
		present := got != nil
		if present && !bytes.Equal(got.Body, m) {
			t.Fatalf("round %d: the manifest is served with other bytes", it)
		}
		if deleteStatus == http.StatusNotFound && !present {
			t.Fatalf("round %d: the DELETE found nothing, so the PUT came after it, yet the manifest is gone", it)
		}
		byTag := a.getManifest(t, repo, tag)
		if present != (byTag != nil) || byTag != nil && !bytes.Equal(byTag.Body, m) {
			t.Fatalf("round %d: manifest present %v, but its tag resolves to %v", it, present, byTag)
		}
		if tags := a.srv.Tags(t, repo); slices.Contains(tags, tag) != present {
			t.Fatalf("round %d: manifest present %v, tags %q", it, present, tags)
		}
		refPresent := a.getManifest(t, repo, refDigest.String()) != nil
		var listed []digest.Digest
		for _, desc := range a.srv.Referrers(t, repo, d) {
			listed = append(listed, desc.Digest)
			r := a.getManifest(t, repo, desc.Digest.String())
			if r == nil {
				t.Fatalf("round %d: the referrers API lists %s, which is not there", it, desc.Digest)
			}
			var listedManifest ocispec.Manifest
			if err := json.Unmarshal(r.Body, &listedManifest); err != nil || listedManifest.Subject == nil || listedManifest.Subject.Digest != d {
				t.Fatalf("round %d: the referrers API lists %s, whose subject is not %s", it, desc.Digest, d)
			}
		}
		if refPresent != slices.Contains(listed, refDigest) {
			t.Fatalf("round %d: referrer present %v, listed %v", it, refPresent, listed)
		}
	}
	checkNoPanic(t, s)
}
