package durability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

const (
	killPushers = 8
	// A round kills the server once the pushers have had killMinAcks requests
	// acknowledged, plus a random number below killSpread, plus a random delay: progress
	// rather than time picks the moment, so that a slow machine does as much work
	// before the kill as a fast one.
	killMinAcks = 20
	killSpread  = 200
	killJitter  = 30 * time.Millisecond

	sigType     = "application/vnd.graft.test.signature"
	payloadType = "application/vnd.graft.test.payload"
)

var killTags = []string{"latest", "v1", "v2", "stable", "edge"}

// errKilled ends a pusher's round: its request failed because the server was killed.
var errKilled = errors.New("the server was killed")

// TestKillAnyMoment is the crash test: a process killed at any point leaves no corrupt
// or half-visible blob or manifest. Pushers write concurrently, each to repositories of
// its own, and record what the server acknowledged and what was in flight; the server
// is killed with SIGKILL at a random moment and restarted on its data directory, and
// every object is checked against what the pushers know. Then the pushers go on, and
// the whole repeats.
func TestKillAnyMoment(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	sd := seed(t, "GRAFT_KILL_SEED")
	rng := rand.New(rand.NewPCG(sd, 0))
	s := graftest.Start(t)

	// Blobs that every pusher may push: concurrent uploads of the same content to
	// several repositories.
	pool := make([][]byte, 12)
	for i := range pool {
		pool[i] = randomBytes(rng, 1+rng.IntN(64<<10))
	}
	pushers := make([]*pusher, killPushers)
	for i := range pushers {
		p := &pusher{
			id:    i,
			rng:   rand.New(rand.NewPCG(sd, uint64(i+1))),
			pool:  pool,
			repos: []string{fmt.Sprintf("kill/p%d/a", i), fmt.Sprintf("kill/p%d/b", i)},
			model: map[string]*repoModel{},
			known: map[string]map[digest.Digest]*pushedManifest{},
			data:  map[digest.Digest][]byte{},
		}
		for _, repo := range p.repos {
			p.model[repo] = newRepoModel()
			p.known[repo] = map[digest.Digest]*pushedManifest{}
		}
		pushers[i] = p
	}

	for round := 1; round <= rounds; round++ {
		a := newAPI(s)
		var (
			killing atomic.Bool
			acks    atomic.Int64
			once    sync.Once
			reached = make(chan struct{})
			target  = killMinAcks + rng.Int64N(killSpread)
			wg      sync.WaitGroup
			errs    = make([]error, len(pushers))
		)
		for i, p := range pushers {
			p.a, p.killing, p.acks, p.target = a, &killing, &acks, target
			p.reached = func() { once.Do(func() { close(reached) }) }
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = p.run()
			}()
		}
		allDone := make(chan struct{})
		go func() { wg.Wait(); close(allDone) }()
		select {
		case <-reached:
		case <-allDone:
		}
		// The random moment: the pushers keep going meanwhile.
		time.Sleep(time.Duration(rng.Int64N(int64(killJitter))))
		killing.Store(true)
		s.Kill()
		<-allDone
		a.close()
		for _, err := range errs {
			if err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
		inflight := 0
		for _, p := range pushers {
			if p.pending != nil {
				inflight++
			}
		}
		t.Logf("round %d: killed after %d acknowledged requests, %d pushers had a change in flight",
			round, acks.Load(), inflight)

		s.Restart()
		a = newAPI(s)
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			for _, p := range pushers {
				t.Run(fmt.Sprintf("pusher%d", p.id), func(t *testing.T) {
					t.Parallel()
					p.verify(t, a)
				})
			}
		})
		checkRegistryWalk(t, a, pushers)
		checkNoPanic(t, s)
		a.close()
		if t.Failed() {
			t.Fatalf("round %d failed (seed %d)", round, sd)
		}
	}

	// The registry still works after the last restart, and stops cleanly.
	a := newAPI(s)
	defer a.close()
	im := apitest.NewImage(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, "layer of after the kills")
	a.srv.PushImage(t, "kill/after", "latest", im)
	if r := a.getManifest(t, "kill/after", "latest"); r == nil || !bytes.Equal(r.Body, im.Manifest.Data) {
		t.Fatalf("the image pushed after the kills does not read back")
	}
	s.Stop()
	if code := s.ExitCode(); code != 0 {
		t.Errorf("graft serve exited with %d after SIGTERM", code)
	}
}

// pushedManifest is a manifest a pusher sent.
type pushedManifest struct {
	digest       digest.Digest
	content      []byte
	subject      digest.Digest
	artifactType string
	refs         []ocispec.Descriptor // the blobs it names: config and layers
}

// repoModel is a repository as the acknowledged requests of its pusher made it.
type repoModel struct {
	blobs     map[digest.Digest]bool
	manifests map[digest.Digest]*pushedManifest
	tags      map[string]digest.Digest
}

func newRepoModel() *repoModel {
	return &repoModel{
		blobs:     map[digest.Digest]bool{},
		manifests: map[digest.Digest]*pushedManifest{},
		tags:      map[string]digest.Digest{},
	}
}

func (m *repoModel) clone() *repoModel {
	c := newRepoModel()
	for k, v := range m.blobs {
		c.blobs[k] = v
	}
	for k, v := range m.manifests {
		c.manifests[k] = v
	}
	for k, v := range m.tags {
		c.tags[k] = v
	}
	return c
}

// change is what one request does to a repository when it takes effect.
type change struct {
	repo  string
	blob  digest.Digest   // becomes readable
	put   *pushedManifest // is stored and tagged with tags
	tags  []string
	del   digest.Digest // is deleted, with its referrers, recursively
	untag string
}

func (c *change) String() string {
	switch {
	case c.blob != "":
		return "blob " + c.blob.String()
	case c.put != nil:
		return fmt.Sprintf("put %s tags %q", c.put.digest, c.tags)
	case c.del != "":
		return "delete " + c.del.String()
	}
	return "untag " + c.untag
}

func (m *repoModel) apply(c *change) {
	switch {
	case c.blob != "":
		m.blobs[c.blob] = true
	case c.put != nil:
		m.manifests[c.put.digest] = c.put
		for _, tag := range c.tags {
			m.tags[tag] = c.put.digest
		}
	case c.del != "":
		// The server cascades: the manifests whose subject is deleted go too.
		gone := map[digest.Digest]bool{c.del: true}
		for grew := true; grew; {
			grew = false
			for d, pm := range m.manifests {
				if !gone[d] && pm.subject != "" && gone[pm.subject] {
					gone[d], grew = true, true
				}
			}
		}
		for d := range gone {
			delete(m.manifests, d)
		}
		for tag, d := range m.tags {
			if gone[d] {
				delete(m.tags, tag)
			}
		}
	case c.untag != "":
		delete(m.tags, c.untag)
	}
}

// session is an upload session a pusher opened and has not finished.
type session struct {
	repo      string
	loc       string
	data      []byte
	acked     int64 // bytes the server acknowledged
	inflight  int64 // bytes of a PATCH that got no answer
	finishing bool  // the PUT that commits it got no answer
}

// pusher writes to repositories of its own, one request at a time, so that at most
// one of its changes is in flight when the server dies.
type pusher struct {
	id    int
	rng   *rand.Rand
	pool  [][]byte
	repos []string
	model map[string]*repoModel
	// known holds every manifest ever sent to a repository, to find out which are
	// there after a kill.
	known    map[string]map[digest.Digest]*pushedManifest
	data     map[digest.Digest][]byte // every blob sent
	pending  *change                  // the change whose request got no answer
	sessions []*session

	a       *api
	killing *atomic.Bool
	acks    *atomic.Int64
	target  int64
	reached func()
}

// run pushes until the server is killed, and returns an error for any answer that is
// not the one expected.
func (p *pusher) run() error {
	err := p.park()
	for err == nil {
		switch n := p.rng.IntN(100); {
		case n < 18:
			err = p.pushBlob(false)
		case n < 28:
			err = p.pushBlob(true)
		case n < 33:
			err = p.mount()
		case n < 55:
			err = p.pushImage()
		case n < 70:
			err = p.pushArtifact()
		case n < 85:
			err = p.moveTag()
		case n < 93:
			err = p.deleteManifest()
		default:
			err = p.untag()
		}
	}
	if errors.Is(err, errKilled) {
		return nil
	}
	return fmt.Errorf("pusher %d: %w", p.id, err)
}

func (p *pusher) send(method, path string, body []byte, hdr ...string) (*apitest.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, err := p.a.srv.Try(context.Background(), method, path, r, hdr...)
	if err != nil {
		if p.killing.Load() {
			return nil, errKilled
		}
		return nil, err
	}
	return resp, nil
}

func expect(r *apitest.Response, status int, what string) error {
	if r.Status != status {
		return fmt.Errorf("%s: got %s, want %d", what, r, status)
	}
	return nil
}

func (p *pusher) ack() {
	if p.acks.Add(1) == p.target {
		p.reached()
	}
}

// done records that the server acknowledged c.
func (p *pusher) done(c *change) {
	p.model[c.repo].apply(c)
	p.pending = nil
	p.ack()
}

func (p *pusher) pickRepo() string { return p.repos[p.rng.IntN(len(p.repos))] }

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// sortedKeys returns the keys of m in order, so that a seed replays the same choices.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (p *pusher) newBlob() []byte {
	switch n := p.rng.IntN(100); {
	case n < 25:
		return pick(p.rng, p.pool)
	case n < 90:
		return randomBytes(p.rng, 1+p.rng.IntN(4096))
	case n < 97:
		return randomBytes(p.rng, 4096+p.rng.IntN(256<<10))
	default:
		// Larger than the blob store's copy buffer.
		return randomBytes(p.rng, 1<<20+p.rng.IntN(1<<20))
	}
}

func (p *pusher) pushBlob(chunked bool) error {
	_, err := p.upload(p.pickRepo(), p.newBlob(), chunked)
	return err
}

// upload pushes data to repo, in one request or in chunks.
func (p *pusher) upload(repo string, data []byte, chunked bool) (digest.Digest, error) {
	d := digest.FromBytes(data)
	p.data[d] = data
	if !chunked || len(data) < 4 {
		c := &change{repo: repo, blob: d}
		p.pending = c
		r, err := p.send(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
			"Content-Type", "application/octet-stream")
		if err != nil {
			return "", err
		}
		if err := expect(r, http.StatusCreated, "monolithic upload to "+repo); err != nil {
			return "", err
		}
		p.done(c)
		return d, nil
	}
	s, err := p.startSession(repo, data)
	if err != nil {
		return "", err
	}
	if err := p.patchUpTo(s, int64(len(data))); err != nil {
		return "", err
	}
	return d, p.finish(s)
}

func (p *pusher) startSession(repo string, data []byte) (*session, error) {
	p.data[digest.FromBytes(data)] = data
	p.pending = nil
	r, err := p.send(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return nil, err
	}
	if err := expect(r, http.StatusAccepted, "POST upload to "+repo); err != nil {
		return nil, err
	}
	p.ack()
	s := &session{repo: repo, loc: r.Header.Get("Location"), data: data}
	p.sessions = append(p.sessions, s)
	return s, nil
}

// patchUpTo sends the bytes of s up to offset end in one to three PATCHes of at least
// two bytes: an upload's Range cannot tell one byte from none.
func (p *pusher) patchUpTo(s *session, end int64) error {
	for s.acked < end {
		n := end - s.acked
		if n >= 4 && p.rng.IntN(2) == 0 {
			n = 2 + p.rng.Int64N(n-3)
		}
		s.inflight = n
		r, err := p.send(http.MethodPatch, s.loc, s.data[s.acked:s.acked+n],
			"Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", s.acked, s.acked+n-1))
		if err != nil {
			return err
		}
		if err := expect(r, http.StatusAccepted, "PATCH "+s.loc); err != nil {
			return err
		}
		if got := r.Header.Get("Range"); got != apitest.UploadRange(s.acked+n) {
			return fmt.Errorf("PATCH %s: Range %q, want %q", s.loc, got, apitest.UploadRange(s.acked+n))
		}
		s.acked += n
		s.inflight = 0
		if loc := r.Header.Get("Location"); loc != "" {
			s.loc = loc
		}
		p.ack()
	}
	return nil
}

func (p *pusher) finish(s *session) error {
	c := &change{repo: s.repo, blob: digest.FromBytes(s.data)}
	p.pending = c
	s.finishing = true
	r, err := p.send(http.MethodPut, apitest.WithQuery(s.loc, "digest", c.blob.String()), nil)
	if err != nil {
		return err
	}
	if err := expect(r, http.StatusCreated, "PUT "+s.loc); err != nil {
		return err
	}
	p.sessions = slices.DeleteFunc(p.sessions, func(x *session) bool { return x == s })
	p.done(c)
	return nil
}

// park opens a session and sends part of a blob to it, to be resumed after the kill.
func (p *pusher) park() error {
	data := randomBytes(p.rng, 64+p.rng.IntN(64<<10))
	s, err := p.startSession(p.pickRepo(), data)
	if err != nil {
		return err
	}
	return p.patchUpTo(s, int64(len(data)/2))
}

func (p *pusher) mount() error {
	to := p.pickRepo()
	from := p.repos[0]
	if from == to {
		from = p.repos[1]
	}
	var ds []digest.Digest
	for _, d := range sortedKeys(p.model[from].blobs) {
		if !p.model[to].blobs[d] {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return p.pushBlob(false)
	}
	c := &change{repo: to, blob: pick(p.rng, ds)}
	p.pending = c
	r, err := p.send(http.MethodPost, "/v2/"+to+"/blobs/uploads/?mount="+c.blob.String()+"&from="+from, nil)
	if err != nil {
		return err
	}
	if err := expect(r, http.StatusCreated, "mount to "+to); err != nil {
		return err
	}
	p.done(c)
	return nil
}

func (p *pusher) pushImage() error {
	repo := p.pickRepo()
	config := imageConfig(fmt.Sprintf("p%d-%x", p.id, p.rng.Uint64()))
	if _, err := p.upload(repo, config, p.rng.IntN(4) == 0); err != nil {
		return err
	}
	refs := []ocispec.Descriptor{apitest.NewBlob(ocispec.MediaTypeImageConfig, config).Desc}
	blobs := sortedKeys(p.model[repo].blobs)
	for range p.rng.IntN(3) {
		if len(blobs) == 0 {
			break
		}
		d := pick(p.rng, blobs)
		if !slices.ContainsFunc(refs, func(x ocispec.Descriptor) bool { return x.Digest == d }) {
			refs = append(refs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(p.data[d]))})
		}
	}
	body := apitest.ImageManifest(refs[0], refs[1:], "", nil)
	pm := &pushedManifest{digest: digest.FromBytes(body), content: body, artifactType: ocispec.MediaTypeImageConfig, refs: refs}
	ref, tags := pm.digest.String(), []string(nil)
	switch p.rng.IntN(3) {
	case 0:
		ref = pick(p.rng, killTags)
		tags = []string{ref}
	case 1:
		tags = []string{pick(p.rng, killTags)}
		if p.rng.IntN(2) == 0 {
			tags = append(tags, pick(p.rng, killTags))
		}
	}
	return p.putManifest(repo, ref, pm, tags)
}

func (p *pusher) pushArtifact() error {
	repo := p.pickRepo()
	m := p.model[repo]
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest}
	if present := sortedKeys(m.manifests); len(present) > 0 && p.rng.IntN(5) > 0 {
		pm := m.manifests[pick(p.rng, present)]
		subject.Digest, subject.Size = pm.digest, int64(len(pm.content))
	} else {
		// The spec lets a referrer come before its subject.
		subject.Digest, subject.Size = digest.FromBytes(randomBytes(p.rng, 32)), 512
	}
	if !m.blobs[ocispec.DescriptorEmptyJSON.Digest] {
		if _, err := p.upload(repo, ocispec.DescriptorEmptyJSON.Data, false); err != nil {
			return err
		}
	}
	payload := randomBytes(p.rng, 16+p.rng.IntN(512))
	if _, err := p.upload(repo, payload, false); err != nil {
		return err
	}
	refs := []ocispec.Descriptor{ocispec.DescriptorEmptyJSON, apitest.NewBlob(payloadType, payload).Desc}
	body := apitest.ImageManifest(refs[0], refs[1:], sigType, &subject)
	pm := &pushedManifest{digest: digest.FromBytes(body), content: body, subject: subject.Digest, artifactType: sigType, refs: refs}
	if p.rng.IntN(5) == 0 {
		tag := pick(p.rng, killTags)
		return p.putManifest(repo, tag, pm, []string{tag})
	}
	return p.putManifest(repo, pm.digest.String(), pm, nil)
}

// putManifest sends pm as ref of repo, tagged with tags (which include ref when it is
// a tag).
func (p *pusher) putManifest(repo, ref string, pm *pushedManifest, tags []string) error {
	path := "/v2/" + repo + "/manifests/" + ref
	if ref == pm.digest.String() {
		sep := "?"
		for _, tag := range tags {
			path += sep + "tag=" + tag
			sep = "&"
		}
	}
	c := &change{repo: repo, put: pm, tags: tags}
	p.known[repo][pm.digest] = pm
	p.pending = c
	r, err := p.send(http.MethodPut, path, pm.content, "Content-Type", ocispec.MediaTypeImageManifest)
	if err != nil {
		return err
	}
	if err := expect(r, http.StatusCreated, "PUT "+path); err != nil {
		return err
	}
	if got := r.Header.Get("Docker-Content-Digest"); got != pm.digest.String() {
		return fmt.Errorf("PUT %s: Docker-Content-Digest %q, want %s", path, got, pm.digest)
	}
	if got := r.Header.Get("OCI-Subject"); got != pm.subject.String() {
		return fmt.Errorf("PUT %s: OCI-Subject %q, want %q", path, got, pm.subject)
	}
	p.done(c)
	return nil
}

func (p *pusher) moveTag() error {
	repo := p.pickRepo()
	present := sortedKeys(p.model[repo].manifests)
	if len(present) == 0 {
		return p.pushImage()
	}
	pm := p.model[repo].manifests[pick(p.rng, present)]
	tag := pick(p.rng, killTags)
	return p.putManifest(repo, tag, pm, []string{tag})
}

func (p *pusher) deleteManifest() error {
	repo := p.pickRepo()
	present := sortedKeys(p.model[repo].manifests)
	if len(present) == 0 {
		return p.pushImage()
	}
	c := &change{repo: repo, del: pick(p.rng, present)}
	p.pending = c
	r, err := p.send(http.MethodDelete, "/v2/"+repo+"/manifests/"+c.del.String(), nil)
	if err != nil {
		return err
	}
	if err := expect(r, http.StatusAccepted, "DELETE manifest "+c.del.String()); err != nil {
		return err
	}
	p.done(c)
	return nil
}

func (p *pusher) untag() error {
	repo := p.pickRepo()
	tags := sortedKeys(p.model[repo].tags)
	if len(tags) == 0 {
		return p.moveTag()
	}
	c := &change{repo: repo, untag: pick(p.rng, tags)}
	p.pending = c
	r, err := p.send(http.MethodDelete, "/v2/"+repo+"/manifests/"+c.untag, nil)
	if err != nil {
		return err
	}
	if err := expect(r, http.StatusAccepted, "DELETE tag "+c.untag); err != nil {
		return err
	}
	p.done(c)
	return nil
}

// verify checks, after a restart, that each repository of p is in a state its
// requests can have left it in, adopts that state, and resumes and completes the
// upload sessions p had open.
func (p *pusher) verify(t *testing.T, a *api) {
	for _, repo := range p.repos {
		p.verifyRepo(t, a, repo)
	}
	for _, s := range p.sessions {
		p.resume(t, a, s)
	}
	p.sessions = nil
	p.pending = nil
}

// repoState is what a repository serves of the manifests its pusher knows.
type repoState struct {
	present map[digest.Digest]bool
	tags    map[string]digest.Digest
}

func (p *pusher) verifyRepo(t *testing.T, a *api, repo string) {
	m := p.model[repo]
	candidates := []*repoModel{m}
	c := p.pending
	if c != nil && c.repo == repo {
		n := m.clone()
		n.apply(c)
		candidates = append(candidates, n)
	}

	// Every acknowledged blob is intact; the one in flight is there intact or not at all.
	for _, d := range sortedKeys(m.blobs) {
		a.checkBlob(t, repo, p.data[d])
	}
	if c != nil && c.repo == repo && c.blob != "" && !m.blobs[c.blob] {
		r := a.srv.Do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+c.blob.String(), nil)
		switch r.Status {
		case http.StatusOK:
			if a.checkBlob(t, repo, p.data[c.blob]) {
				m.blobs[c.blob] = true
			}
		case http.StatusNotFound:
		default:
			t.Errorf("HEAD the blob in flight %s in %s: %s", c.blob, repo, r)
		}
	}

	got := fetchRepo(t, a, repo, p.known[repo])
	var match *repoModel
	for _, cand := range candidates {
		if sameState(cand, got) {
			match = cand
			break
		}
	}
	if match == nil {
		msg := fmt.Sprintf("%s is in a state no sequence of its requests leaves:\n  serves manifests %v, tags %v\n  acknowledged: manifests %v, tags %v",
			repo, sortedKeys(got.present), got.tags, sortedKeys(m.manifests), m.tags)
		if len(candidates) > 1 {
			msg += fmt.Sprintf("\n  with the request in flight (%s): manifests %v, tags %v",
				c, sortedKeys(candidates[1].manifests), candidates[1].tags)
		}
		t.Error(msg)
		return
	}
	match.blobs = m.blobs
	p.model[repo] = match
	checkReferrers(t, a, repo, match)
}

// fetchRepo reads which of the known manifests repo serves, intact, and its tags.
func fetchRepo(t *testing.T, a *api, repo string, known map[digest.Digest]*pushedManifest) repoState {
	st := repoState{present: map[digest.Digest]bool{}, tags: map[string]digest.Digest{}}
	for _, d := range sortedKeys(known) {
		r := a.getManifest(t, repo, d.String())
		if r == nil {
			continue
		}
		if !bytes.Equal(r.Body, known[d].content) {
			t.Errorf("GET %s@%s: the bytes differ from those pushed", repo, d)
		}
		if ct := r.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageManifest {
			t.Errorf("GET %s@%s: Content-Type %q", repo, d, ct)
		}
		st.present[d] = true
	}
	for _, tag := range a.srv.Tags(t, repo) {
		if _, dup := st.tags[tag]; dup {
			t.Errorf("%s lists tag %s twice", repo, tag)
		}
		r := a.getManifest(t, repo, tag)
		if r == nil {
			t.Errorf("%s lists tag %s, which does not resolve", repo, tag)
			continue
		}
		d := digest.FromBytes(r.Body)
		if known[d] == nil {
			t.Errorf("%s:%s names %s, which was never pushed there", repo, tag, d)
		}
		st.tags[tag] = d
	}
	return st
}

func sameState(m *repoModel, st repoState) bool {
	if len(m.manifests) != len(st.present) || len(m.tags) != len(st.tags) {
		return false
	}
	for d := range m.manifests {
		if !st.present[d] {
			return false
		}
	}
	for tag, d := range m.tags {
		if st.tags[tag] != d {
			return false
		}
	}
	return true
}

// checkReferrers checks that the referrers API lists exactly the manifests of repo
// whose subject is the one asked for, with their descriptors.
func checkReferrers(t *testing.T, a *api, repo string, m *repoModel) {
	subjects := map[digest.Digest]bool{}
	for d, pm := range m.manifests {
		subjects[d] = true
		if pm.subject != "" {
			subjects[pm.subject] = true
		}
	}
	for _, s := range sortedKeys(subjects) {
		want := map[digest.Digest]*pushedManifest{}
		for d, pm := range m.manifests {
			if pm.subject == s {
				want[d] = pm
			}
		}
		got := a.srv.Referrers(t, repo, s)
		if len(got) != len(want) {
			t.Errorf("referrers of %s in %s: %d listed, want %d", s, repo, len(got), len(want))
		}
		for _, desc := range got {
			pm := want[desc.Digest]
			if pm == nil {
				t.Errorf("referrers of %s in %s list %s, which is not there or has another subject", s, repo, desc.Digest)
				continue
			}
			if desc.Size != int64(len(pm.content)) || desc.MediaType != ocispec.MediaTypeImageManifest || desc.ArtifactType != pm.artifactType {
				t.Errorf("referrers of %s in %s: descriptor %+v does not describe the manifest", s, repo, desc)
			}
		}
	}
}

// resume checks what the server kept of session s and completes the upload from
// there. A PATCH in flight at the kill may have left part of its bytes: the blob store
// writes them before it answers and a killed process rolls nothing back. What was
// acknowledged is always kept, and what is kept is always a prefix of what was sent.
func (p *pusher) resume(t *testing.T, a *api, s *session) {
	r := a.srv.Do(t, http.MethodGet, s.loc, nil)
	if r.Status == http.StatusNotFound {
		a.checkError(t, "GET "+s.loc, r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		if !s.finishing {
			t.Errorf("upload %s to %s: %d bytes were acknowledged, the session is gone after the kill", s.loc, s.repo, s.acked)
		}
		// A commit in flight may have completed: the blob in flight was checked.
		return
	}
	if r.Status != http.StatusNoContent {
		t.Errorf("GET %s: %s", s.loc, r)
		return
	}
	size, ambiguous, err := uploadEnd(r.Header.Get("Range"))
	if err != nil {
		t.Errorf("GET %s: %v", s.loc, err)
		return
	}
	lo, hi := s.acked, s.acked+s.inflight
	if ambiguous && lo > 1 || !ambiguous && (size < lo || size > hi) {
		t.Errorf("upload %s: holds %q after the kill; %d bytes were acknowledged, %d more in flight",
			s.loc, r.Header.Get("Range"), s.acked, s.inflight)
		return
	}
	offsets := []int64{size}
	if ambiguous {
		offsets = []int64{0, 1}
	}
	total := int64(len(s.data))
	for i, off := range offsets {
		if off >= total {
			break
		}
		r := a.srv.Do(t, http.MethodPatch, s.loc, s.data[off:], "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", off, total-1))
		if r.Status == http.StatusRequestedRangeNotSatisfiable && i+1 < len(offsets) {
			continue
		}
		if r.Status != http.StatusAccepted || r.Header.Get("Range") != apitest.UploadRange(total) {
			t.Errorf("PATCH %s from %d: %s", s.loc, off, r)
			return
		}
		break
	}
	d := digest.FromBytes(s.data)
	r = a.srv.Do(t, http.MethodPut, apitest.WithQuery(s.loc, "digest", d.String()), nil)
	if r.Status != http.StatusCreated {
		t.Errorf("PUT %s after resuming: %s (the kept bytes are not what was sent)", s.loc, r)
		return
	}
	if a.checkBlob(t, s.repo, s.data) {
		p.model[s.repo].blobs[d] = true
	}
}

// checkRegistryWalk walks the registry as a client sees it (catalog, tags, manifests,
// the blobs they name) and the blob store on disk, and checks that everything found is
// intact and that nothing acknowledged is missing.
func checkRegistryWalk(t *testing.T, a *api, pushers []*pusher) {
	t.Helper()
	owners := map[string]*pusher{}
	for _, p := range pushers {
		for _, repo := range p.repos {
			owners[repo] = p
		}
	}
	listed := map[string]bool{}
	for _, repo := range a.srv.Catalog(t) {
		listed[repo] = true
		if owners[repo] == nil {
			t.Errorf("the catalog lists %s, which nobody pushed to", repo)
			continue
		}
		for _, tag := range a.srv.Tags(t, repo) {
			r := a.getManifest(t, repo, tag)
			if r == nil {
				t.Errorf("%s lists tag %s, which does not resolve", repo, tag)
				continue
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Errorf("%s:%s: %v", repo, tag, err)
				continue
			}
			for _, desc := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				checkBlobDesc(t, a, repo, desc)
			}
		}
	}
	files := blobFiles(t, a.srv.DataDir)
	for _, p := range pushers {
		for _, repo := range p.repos {
			m := p.model[repo]
			if (len(m.blobs) > 0 || len(m.manifests) > 0) && !listed[repo] {
				t.Errorf("the catalog does not list %s", repo)
			}
			for d := range m.blobs {
				if size, ok := files[d]; !ok || size != int64(len(p.data[d])) {
					t.Errorf("blob %s of %s: not in the blob store as %d bytes", d, repo, len(p.data[d]))
				}
			}
		}
	}
}

// checkBlobDesc checks that repo serves the blob desc describes, intact.
func checkBlobDesc(t *testing.T, a *api, repo string, desc ocispec.Descriptor) {
	t.Helper()
	path := "/v2/" + repo + "/blobs/" + desc.Digest.String()
	r := a.srv.Do(t, http.MethodHead, path, nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Length") != strconv.FormatInt(desc.Size, 10) {
		t.Errorf("HEAD %s: got %s, want 200 with %d bytes", path, r, desc.Size)
		return
	}
	r = a.srv.Do(t, http.MethodGet, path, nil)
	if r.Status != http.StatusOK || digest.FromBytes(r.Body) != desc.Digest {
		t.Errorf("GET %s: got %d with %d bytes that hash to %s", path, r.Status, len(r.Body), digest.FromBytes(r.Body))
	}
}
