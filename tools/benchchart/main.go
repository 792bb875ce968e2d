// Command benchchart draws the fan-out chart of amicrypt's benchmarks from
// bench/results/results.json: makespan ÷ lower bound and calls per copy (at
// real-time cadence) against the number of copies, as PNG and SVG. It is a
// module of its own so gonum/plot and its fonts stay out of the plugin's
// go.mod.
//
//	go run -C tools/benchchart . -in $PWD/bench/results/results.json -out $PWD/bench/results
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // registers the png format
	_ "gonum.org/v1/plot/vg/vgsvg" // registers the svg format
)

// The done-when targets of the fan-out at 500 copies.
const (
	targetRatio        = 1.05
	targetCallsPerCopy = 20
)

// errNoFanout: the results hold no fan-out row.
var errNoFanout = errors.New("no B2 (fan-out) row to chart; run the B2 scenario (make bench) first")

// row is the part of a results.json row the chart reads.
type row struct {
	Scenario             string  `json:"scenario"`
	Size                 string  `json:"size"`
	Copies               int     `json:"copies"`
	RatioToBound         float64 `json:"makespan_over_bound"`
	CallsPerCopyRealTime float64 `json:"calls_per_copy_real_time"`
	Commit               string  `json:"commit"`
}

func main() {
	in := flag.String("in", "bench/results/results.json", "results.json to read")
	out := flag.String("out", "bench/results", "directory for fanout.png and fanout.svg")
	flag.Parse()
	err := run(*in, *out)
	if errors.Is(err, errNoFanout) {
		// Only other scenarios ran: nothing to draw, and nothing wrong.
		fmt.Fprintln(os.Stderr, "benchchart: no chart:", err)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var results struct {
		Rows []row `json:"rows"`
	}
	if err := json.Unmarshal(data, &results); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	var fanout []row
	for _, r := range results.Rows {
		if r.Scenario == "B2" && r.Copies > 0 {
			fanout = append(fanout, r)
		}
	}
	if len(fanout) == 0 {
		return fmt.Errorf("%s: %w", in, errNoFanout)
	}
	sort.Slice(fanout, func(i, j int) bool { return fanout[i].Copies < fanout[j].Copies })
	for _, format := range []string{"png", "svg"} {
		if err := write(filepath.Join(out, "fanout."+format), format, fanout); err != nil {
			return err
		}
	}
	return nil
}

// write renders both panels, one above the other, into path.
func write(path, format string, rows []row) error {
	ratio, err := panel(rows, "makespan ÷ lower bound", func(r row) float64 { return r.RatioToBound }, targetRatio, fmt.Sprintf("target %g×", targetRatio), true)
	if err != nil {
		return err
	}
	ratio.Title.Text = "amicrypt-copy fan-out with its defaults (emulator)"
	calls, err := panel(rows, "calls per copy (real-time cadence)", func(r row) float64 { return r.CallsPerCopyRealTime }, targetCallsPerCopy, fmt.Sprintf("target %d", targetCallsPerCopy), false)
	if err != nil {
		return err
	}
	calls.X.Label.Text = "copies (accounts × regions)"

	const width, height = 7 * vg.Inch, 7 * vg.Inch
	canvas, err := draw.NewFormattedCanvas(width, height, format)
	if err != nil {
		return err
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(16), PadY: vg.Points(16)}
	plots := [][]*plot.Plot{{ratio}, {calls}}
	canvases := plot.Align(plots, tiles, draw.New(canvas))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, werr := canvas.WriteTo(f)
	return errors.Join(werr, f.Close())
}

// panel is one measure against the number of copies (log scale, 1 to at
// least 500, the done-when point), each point labelled with its shape, and
// a dashed line at the target; logY for ratios, which span decades.
func panel(rows []row, label string, y func(row) float64, target float64, targetLabel string, logY bool) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = label
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	p.X.Min, p.X.Max = 0.7, 700

	var pts plotter.XYs
	var labels []string
	for _, r := range rows {
		if v := y(r); v > 0 {
			pts = append(pts, plotter.XY{X: float64(r.Copies), Y: v})
			labels = append(labels, r.Size)
		}
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("no row has a value for %q", label)
	}
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return nil, err
	}
	line.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	line.Width = vg.Points(1.5)
	points.Shape = draw.CircleGlyph{}
	points.Color = line.Color
	points.Radius = vg.Points(3)
	names, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
	if err != nil {
		return nil, err
	}
	for i := range names.TextStyle {
		names.TextStyle[i].XAlign = draw.XLeft
		names.TextStyle[i].YAlign = draw.YBottom
	}
	names.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(2)}

	top := target
	for _, pt := range pts {
		top = max(top, pt.Y)
	}
	p.X.Max = max(p.X.Max, pts[len(pts)-1].X*1.4)
	goal, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: target}, {X: p.X.Max, Y: target}})
	if err != nil {
		return nil, err
	}
	goal.Color = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	goal.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	p.Add(goal, line, points, names)
	p.Legend.Add(targetLabel, goal)
	p.Legend.Add("measured", line, points)
	// Where the data leaves room: ratios start near 1 on the left and grow
	// to the right (top left is free); calls per copy sit well above 0
	// (bottom right is free).
	p.Legend.Top, p.Legend.Left = logY, logY
	p.Legend.XOffs = vg.Points(8)
	if !logY {
		p.Legend.XOffs, p.Legend.YOffs = -vg.Points(8), vg.Points(8)
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = 0.8, top*2
	} else {
		p.Y.Min, p.Y.Max = 0, top*1.15
	}
	return p, nil
}
