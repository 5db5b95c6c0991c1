package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docker/go-units"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows long steps: bars on a terminal (mpb), one line per step
// otherwise, nothing with --quiet.
type progress struct {
	bars  *mpb.Progress
	lines io.Writer // nil with --quiet
}

// newProgress decides how to show progress on w.
func newProgress(w *os.File, quiet bool) *progress {
	switch {
	case quiet:
		return &progress{}
	case term.IsTerminal(int(w.Fd())):
		return &progress{bars: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), lines: w}
	}
	return &progress{lines: w}
}

// step is one long step: counted in bytes (or units), finished with done.
type step struct {
	p     *progress
	name  string
	bar   *mpb.Bar
	start time.Time
	n     int64
}

// step starts a step of about total bytes (0: unknown; bytes false counts
// units, e.g. layers).
func (p *progress) step(name string, total int64, bytes bool) *step {
	s := &step{p: p, name: name, start: time.Now()}
	switch {
	case p.bars != nil:
		counter := decor.CountersNoUnit("%d / %d")
		if bytes {
			counter = decor.CountersKibiByte("% .1f / % .1f")
		}
		s.bar = p.bars.AddBar(total, mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(counter, decor.Name(" "), decor.Elapsed(decor.ET_STYLE_GO)))
	case p.lines != nil:
		fmt.Fprintf(p.lines, "%s ...\n", name)
	}
	return s
}

// add counts n more bytes or units.
func (s *step) add(n int64) {
	s.n += n
	if s.bar != nil {
		s.bar.IncrInt64(n)
	}
}

// total raises the expected total (units found along the way).
func (s *step) total(n int64) {
	if s.bar != nil {
		s.bar.SetTotal(n, false)
	}
}

// reader counts what is read through it.
func (s *step) reader(r io.Reader) io.Reader { return &countingReader{r: r, s: s} }

// done ends the step.
func (s *step) done(err error, bytes bool) {
	if s.bar != nil {
		if err != nil {
			s.bar.Abort(false)
		} else {
			s.bar.SetTotal(-1, true)
		}
		return
	}
	if s.p.lines == nil {
		return
	}
	amount := fmt.Sprint(s.n)
	if bytes {
		amount = units.BytesSize(float64(s.n))
	}
	if err != nil {
		fmt.Fprintf(s.p.lines, "%s: failed after %s: %v\n", s.name, time.Since(s.start).Round(time.Millisecond), err)
		return
	}
	fmt.Fprintf(s.p.lines, "%s: done, %s in %s\n", s.name, amount, time.Since(s.start).Round(time.Millisecond))
}

// wait lets the bars draw their last state.
func (p *progress) wait() {
	if p.bars != nil {
		p.bars.Wait()
	}
}

type countingReader struct {
	r io.Reader
	s *step
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.s.add(int64(n))
	return n, err
}
