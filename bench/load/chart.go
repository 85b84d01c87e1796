package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"slices"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/gatehouse-authz/gatehouse/bench/workload"
)

// Chart geometry and colours.
const (
	chartW, chartH = 1200, 580
	panelTop       = 70
	panelBottom    = 470
	marginLeft     = 70
	marginRight    = 20
	panelGap       = 30
)

var (
	colBG        = color.RGBA{255, 255, 255, 255}
	colText      = color.RGBA{30, 30, 30, 255}
	colGrid      = color.RGBA{225, 225, 225, 255}
	colAxis      = color.RGBA{120, 120, 120, 255}
	colGatehouse = color.RGBA{31, 119, 180, 255}
	colNoop      = color.RGBA{190, 190, 190, 255}
	colBad       = color.RGBA{200, 50, 40, 255}
	colGood      = color.RGBA{30, 130, 60, 255}
)

// ratioTargets are the checks/s targets at the highest concurrency.
var ratioTargets = map[string]float64{workload.Hot: 1.00, workload.Distinct: 0.90, workload.Invalid: 1.05, workload.Istio: 1.10}

// writeChart draws one panel per scenario: for each concurrency a pair of
// bars (gatehouse, do-nothing server) of checks/s, labelled with the ratio
// and gatehouse's p99 over the do-nothing server's.
func writeChart(path string, r *results) error {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	draw.Draw(img, img.Bounds(), image.NewUniform(colBG), image.Point{}, draw.Src)

	title := fmt.Sprintf("gatehouse vs a do-nothing ext_authz server: checks/s (medians of %d rounds, %gs each, %d CPUs shared by client and servers)",
		r.Params.Rounds, r.Params.DurationS, r.Machine.CPUs)
	text(img, marginLeft, 22, title, colText)
	text(img, marginLeft, 42, fmt.Sprintf("label: gatehouse/noop checks/s ratio; p99 ratio below. %s, request %d bytes.", r.Machine.CPUModel, r.Params.RequestBytes), colAxis)
	legend(img, chartW-marginRight-230, 42)

	var top float64
	for _, x := range r.Rows {
		for _, s := range x.Servers {
			top = max(top, s.ChecksPerSec)
		}
	}
	top = niceCeil(top)
	scenarios := r.Params.Scenarios
	n := len(scenarios)
	if n == 0 || top == 0 {
		return writePNG(path, img)
	}
	panelW := (chartW - marginLeft - marginRight - panelGap*(n-1)) / n
	y := func(v float64) int { return panelBottom - int(v/top*float64(panelBottom-panelTop)) }

	// Y axis grid and labels, shared by the panels.
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		yy := y(v)
		hline(img, marginLeft, chartW-marginRight, yy, colGrid)
		label := fmt.Sprintf("%.0fk", v/1000)
		text(img, marginLeft-8-7*len(label), yy+4, label, colAxis)
	}
	text(img, 8, panelTop-10, "checks/s", colAxis)

	for pi, sc := range scenarios {
		x0 := marginLeft + pi*(panelW+panelGap)
		text(img, x0+panelW/2-7*len(sc)/2, panelBottom+44, sc, colText)
		rows := rowsOf(r.Rows, sc)
		var rssG, rssN float64
		for _, x := range rows {
			if g, no := x.Servers["gatehouse"], x.Servers["noop"]; g != nil && no != nil {
				rssG, rssN = max(rssG, g.PeakRSSMiB), max(rssN, no.PeakRSSMiB)
			}
		}
		if rssG > 0 {
			rl := fmt.Sprintf("peak RSS %.0f MiB (do-nothing %.0f)", rssG, rssN)
			text(img, x0+panelW/2-7*len(rl)/2, panelBottom+62, rl, colAxis)
		}
		if len(rows) == 0 {
			continue
		}
		groupW := panelW / len(rows)
		barW := min(40, groupW/3)
		for gi, x := range rows {
			gx := x0 + gi*groupW + groupW/2
			g, no := x.Servers["gatehouse"], x.Servers["noop"]
			if g != nil {
				fillRect(img, gx-barW-2, y(g.ChecksPerSec), gx-2, panelBottom, colGatehouse)
			}
			if no != nil {
				fillRect(img, gx+2, y(no.ChecksPerSec), gx+barW+2, panelBottom, colNoop)
			}
			lbl := fmt.Sprintf("c=%d", x.Concurrency)
			text(img, gx-7*len(lbl)/2, panelBottom+18, lbl, colText)
			if g == nil || no == nil {
				continue
			}
			hi := y(max(g.ChecksPerSec, no.ChecksPerSec))
			ratioCol := colText
			if want, ok := ratioTargets[sc]; ok && x.Concurrency == slices.Max(r.Params.Concurrency) {
				ratioCol = colGood
				if x.Ratio.ChecksPerSec < want {
					ratioCol = colBad
				}
			}
			rl := fmt.Sprintf("x%.2f", x.Ratio.ChecksPerSec)
			text(img, gx-7*len(rl)/2, hi-22, rl, ratioCol)
			pl := fmt.Sprintf("p99 x%.2f", x.Ratio.P99)
			text(img, gx-7*len(pl)/2, hi-8, pl, colAxis)
		}
	}
	hline(img, marginLeft, chartW-marginRight, panelBottom, colAxis)
	foot := fmt.Sprintf("targets at c=%d (green: met): hot >= 1.00 (CPU <= 1.0x, p99 <= 1.1x), istio >= 1.10, invalid >= 1.05, distinct >= 0.90. %s",
		slices.Max(r.Params.Concurrency), r.Generated.Format("2006-01-02 15:04 UTC"))
	text(img, marginLeft, chartH-14, foot, colAxis)
	return writePNG(path, img)
}

func rowsOf(rows []*row, scenario string) []*row {
	var out []*row
	for _, x := range rows {
		if x.Scenario == scenario {
			out = append(out, x)
		}
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for axis labels.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func legend(img *image.RGBA, x, y int) {
	fillRect(img, x, y-10, x+12, y+2, colGatehouse)
	text(img, x+18, y, "gatehouse", colText)
	fillRect(img, x+110, y-10, x+122, y+2, colNoop)
	text(img, x+128, y, "do-nothing", colText)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func fillRect(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(c), image.Point{}, draw.Src)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	fillRect(img, x0, y, x1, y+1, c)
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
