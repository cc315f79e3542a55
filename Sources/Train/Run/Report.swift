import Foundation

/// One training run as `kiln report` shows it: its epochs (metrics.jsonl), classes and settings
/// (the checkpoint's header).
public struct ReportRun: Sendable {
    public var name: String
    public var epochs: [EpochReport]
    public var classNames: [String]
    public var classCounts: [Int]
    public var settings: [(String, String)]

    public init(name: String, epochs: [EpochReport], classNames: [String], classCounts: [Int], settings: [(String, String)]) {
        self.name = name
        self.epochs = epochs
        self.classNames = classNames
        self.classCounts = classCounts
        self.settings = settings
    }

    /// The run in `runDirectory` (checkpoint.kcp and metrics.jsonl).
    public static func load(runDirectory: String) throws -> ReportRun {
        let cp = try Checkpoint.read(runDirectory: runDirectory)
        let path = (runDirectory as NSString).appendingPathComponent(MetricsLog.fileName)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw TrainError("\(path): cannot read the run's metrics") }
        var epochs: [EpochReport] = []
        for (i, line) in text.split(separator: "\n").enumerated() {
            do { epochs.append(try JSONDecoder().decode(EpochReport.self, from: Data(line.utf8))) } catch {
                throw TrainError("\(path), line \(i + 1): not an epoch record (\(error.localizedDescription))")
            }
        }
        guard !epochs.isEmpty else { throw TrainError("\(path): no finished epoch yet") }
        var name = runDirectory
        while name.count > 1 && name.hasSuffix("/") { name.removeLast() }
        return ReportRun(name: name,
                         epochs: epochs, classNames: cp.header.classNames, classCounts: cp.header.classCounts,
                         settings: settingRows(cp.header.config) + [("epochs trained", String(cp.header.epoch))])
    }

    /// The configuration's fields as (name, JSON value) rows, sorted by name.
    public static func settingRows<T: Encodable>(_ config: T) -> [(String, String)] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? e.encode(config), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        return object.keys.sorted().map { key in
            let v = object[key]!
            if let s = v as? String { return (key, s) }
            let text = (try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "\(v)"
            return (key, text)
        }
    }
}

/// Self-contained HTML pages (inline SVG and CSS, no network) for `kiln report` and
/// `kiln eval --report FILE.html`. Every plotted series carries its values in data-
/// attributes (`data-series`, `data-values`; the scatter's `data-count` / `data-accuracy`;
/// the heat map's `data-count`), so a test can check the plots against the metrics.
public enum HTMLReport {
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    static let shotColors: [Evaluation.Shot: String] = [.many: "#1f77b4", .medium: "#ff7f0e", .few: "#d62728"]

    /// Several training runs side by side.
    public static func training(runs: [ReportRun], title: String = "Kiln training report") -> String {
        var body = "<h1>\(escape(title))</h1>\n"
        body += summaryTable(runs)
        if runs.count > 1 {
            let series = runs.enumerated().map { i, r in
                Series(name: r.name, key: "\(r.name):val.meanClass", color: colors[i % colors.count], values: r.epochs.map { $0.val?.meanClass })
            }
            body += "<h2>Balanced validation accuracy, all runs</h2>\n" + lineChart(series, yLabel: "mean per-class accuracy", unitRange: true)
        }
        body += "<div class=\"runs\">\n"
        for r in runs { body += runColumn(r) }
        body += "</div>\n"
        return page(title: title, body: body)
    }

    /// One evaluation (`kiln eval --report FILE.html`).
    public static func evaluation(title: String, evaluation e: Evaluation, classNames: [String], trainingCounts: [Int]?, settings: [(String, String)]) -> String {
        var body = "<h1>\(escape(title))</h1>\n<table class=\"summary\"><tr><th>images</th><th>top-1</th><th>mean per-class</th><th>many</th><th>medium</th><th>few</th></tr>\n"
        body += "<tr><td>\(e.count)</td><td>\(pct(e.top1))</td><td>\(pct(e.meanClass))</td><td>\(pct(e.many))</td><td>\(pct(e.medium))</td><td>\(pct(e.few))</td></tr></table>\n"
        if let counts = trainingCounts {
            body += "<h2>Per-class accuracy against training images</h2>\n" + scatter(perClass: e.perClass, counts: counts, names: classNames)
        }
        if let m = e.confusion { body += "<h2>Confusion matrix</h2>\n" + heatMap(m, names: classNames) }
        body += settingsTable(settings)
        return page(title: title, body: body)
    }

    // MARK: Parts

    static func summaryTable(_ runs: [ReportRun]) -> String {
        var s = "<table class=\"summary\"><tr><th>run</th><th>epochs</th><th>final top-1</th><th>final mean per-class</th><th>best mean per-class (epoch)</th><th>many</th><th>medium</th><th>few</th></tr>\n"
        for r in runs {
            let last = r.epochs.last?.val
            let best = r.epochs.enumerated().compactMap { i, e in e.val.map { (i + 1, $0.meanClass) } }.max { $0.1 < $1.1 }
            s += "<tr><td>\(escape(r.name))</td><td>\(r.epochs.count)</td><td>\(pct(last?.top1))</td><td>\(pct(last?.meanClass))</td>"
            s += "<td>\(best.map { "\(pct($0.1)) (\($0.0))" } ?? "–")</td><td>\(pct(last?.many))</td><td>\(pct(last?.medium))</td><td>\(pct(last?.few))</td></tr>\n"
        }
        return s + "</table>\n"
    }

    static func runColumn(_ r: ReportRun) -> String {
        var s = "<section class=\"run\" data-run=\"\(escape(r.name))\">\n<h2>\(escape(r.name))</h2>\n"
        let accuracy: [(String, String, (EpochReport) -> Double?)] = [
            ("train", "trainAccuracy", { $0.trainAccuracy }), ("val top-1", "val.top1", { $0.val?.top1 }),
            ("val mean per-class", "val.meanClass", { $0.val?.meanClass }), ("val many-shot", "val.many", { $0.val?.many }),
            ("val medium-shot", "val.medium", { $0.val?.medium }), ("val few-shot", "val.few", { $0.val?.few }),
        ]
        let series = accuracy.enumerated().map { i, a in Series(name: a.0, key: "\(r.name):\(a.1)", color: colors[i % colors.count], values: r.epochs.map(a.2)) }
        s += "<h3>Accuracy per epoch</h3>\n" + lineChart(series, yLabel: "accuracy", unitRange: true)
        s += "<h3>Training loss per epoch</h3>\n" + lineChart([Series(name: "loss", key: "\(r.name):loss", color: colors[0], values: r.epochs.map { $0.loss })], yLabel: "loss", unitRange: false)
        if let last = r.epochs.last?.val {
            s += "<h3>Per-class accuracy against training images (epoch \(r.epochs.count))</h3>\n"
            s += scatter(perClass: last.perClass, counts: r.classCounts, names: r.classNames)
            if let m = last.confusion { s += "<h3>Confusion matrix (epoch \(r.epochs.count))</h3>\n" + heatMap(m, names: r.classNames) }
        }
        s += settingsTable(r.settings)
        return s + "</section>\n"
    }

    static func settingsTable(_ rows: [(String, String)]) -> String {
        guard !rows.isEmpty else { return "" }
        return "<details><summary>Settings</summary><table class=\"settings\">\n"
            + rows.map { "<tr><td>\(escape($0.0))</td><td>\(escape($0.1))</td></tr>\n" }.joined() + "</table></details>\n"
    }

    struct Series {
        var name: String, key: String, color: String
        var values: [Double?]
    }

    static let width = 460.0, height = 260.0, left = 52.0, right = 12.0, top = 12.0, bottom = 36.0

    /// Series against epoch (1…n): axes, ticks, one polyline per series, a legend.
    static func lineChart(_ series: [Series], yLabel: String, unitRange: Bool) -> String {
        let n = max(series.map(\.values.count).max() ?? 1, 1)
        let all = series.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite)
        var lo = unitRange ? 0 : (all.min() ?? 0), hi = unitRange ? 1 : (all.max() ?? 1)
        if hi <= lo { hi = lo + max(1, abs(lo)) }
        if !unitRange { lo = min(lo, 0) }
        let pw = width - left - right, ph = height - top - bottom
        func x(_ e: Int) -> Double { left + (n == 1 ? pw / 2 : Double(e - 1) / Double(n - 1) * pw) }
        func y(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * ph }
        var s = svgOpen(height: height + 18 * Double((series.count + 2) / 3))
        s += axes(xTicks: ticks(1, Double(n)).map { (x(Int($0)), String(Int($0))) },
                  yTicks: ticks(lo, hi).map { (y($0), unitRange ? String(format: "%.0f%%", $0 * 100) : format($0)) }, xLabel: "epoch", yLabel: yLabel)
        for (i, sr) in series.enumerated() {
            let points = sr.values.enumerated().compactMap { e, v in v.flatMap { $0.isFinite ? String(format: "%.2f,%.2f", x(e + 1), y($0)) : nil } }
            let values = sr.values.map { $0.map { "\($0)" } ?? "null" }.joined(separator: ",")
            s += "<polyline fill=\"none\" stroke=\"\(sr.color)\" stroke-width=\"1.6\" points=\"\(points.joined(separator: " "))\" data-series=\"\(escape(sr.key))\" data-values=\"\(values)\"/>\n"
            let lx = left + Double(i % 3) * 140, ly = height + 6 + Double(i / 3) * 18
            s += "<rect x=\"\(lx)\" y=\"\(ly)\" width=\"12\" height=\"3\" fill=\"\(sr.color)\"/><text x=\"\(lx + 16)\" y=\"\(ly + 5)\" class=\"legend\">\(escape(sr.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Per-class accuracy (y) against the class's training images (x, log scale), coloured by shot group.
    static func scatter(perClass: [Double?], counts: [Int], names: [String]) -> String {
        let positive = counts.filter { $0 > 0 }
        let lo = log10(Double(positive.min() ?? 1)) - 0.1, hi = log10(Double(positive.max() ?? 10)) + 0.1
        let pw = width - left - right, ph = height - top - bottom
        func x(_ c: Int) -> Double { left + (log10(Double(max(c, 1))) - lo) / max(hi - lo, 1e-9) * pw }
        func y(_ v: Double) -> Double { top + (1 - v) * ph }
        var decades: [(Double, String)] = []
        var d = pow(10, floor(lo))
        while log10(d) <= hi { if log10(d) >= lo { decades.append((x(Int(d)), String(Int(d)))) }; d *= 10 }
        var s = svgOpen(height: height + 20)
        s += axes(xTicks: decades, yTicks: ticks(0, 1).map { (y($0), String(format: "%.0f%%", $0 * 100)) }, xLabel: "training images (log scale)", yLabel: "accuracy")
        for (c, acc) in perClass.enumerated() where c < counts.count {
            guard let acc else { continue }
            let shot = Evaluation.shot(counts[c]), name = c < names.count ? names[c] : String(c)
            s += "<circle cx=\(q(x(counts[c]))) cy=\(q(y(acc))) r=\"4\" fill=\"\(shotColors[shot]!)\" data-class=\"\(escape(name))\" data-count=\"\(counts[c])\" data-accuracy=\"\(acc)\"><title>\(escape(name)): \(pct(acc)), \(counts[c]) training images</title></circle>\n"
        }
        for (i, shot) in [Evaluation.Shot.many, .medium, .few].enumerated() {
            let lx = left + Double(i) * 120
            s += "<circle cx=\(q(lx + 5)) cy=\(q(height + 8)) r=\"4\" fill=\"\(shotColors[shot]!)\"/><text x=\"\(lx + 14)\" y=\"\(height + 12)\" class=\"legend\">\(shot.rawValue)-shot</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Rows: true class; columns: predicted; shade: the share of the row.
    static func heatMap(_ m: [[Int]], names: [String]) -> String {
        let c = m.count
        guard m.allSatisfy({ $0.count == c }), c <= Evaluation.confusionLimit else {
            return "<p>The confusion matrix in the metrics is not square (\(c) rows); not drawn.</p>\n"
        }
        let cell = max(4.0, min(28.0, 380.0 / Double(max(c, 1))))
        let margin = 60.0, size = margin + cell * Double(c) + 10
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(size))\" height=\"\(n(size))\" viewBox=\"0 0 \(n(size)) \(n(size))\" class=\"heat\">\n"
        s += "<text x=\"\(margin)\" y=\"12\" class=\"axis-label\">predicted →</text><text x=\"4\" y=\"\(margin - 4)\" class=\"axis-label\">true ↓</text>\n"
        for i in 0..<c {
            let rowTotal = max(m[i].reduce(0, +), 1)
            let name = i < names.count ? names[i] : String(i)
            if cell >= 10 {
                s += "<text x=\"\(n(margin - 4))\" y=\"\(n(margin + (Double(i) + 0.7) * cell))\" text-anchor=\"end\" class=\"tick\">\(escape(String(name.prefix(8))))</text>\n"
                s += "<text x=\"\(n(margin + (Double(i) + 0.5) * cell))\" y=\"\(n(margin - 6))\" text-anchor=\"middle\" class=\"tick\">\(escape(String(name.prefix(3))))</text>\n"
            }
            for j in 0..<c {
                let share = Double(m[i][j]) / Double(rowTotal)
                let color = i == j ? "31,119,180" : "214,39,40"
                s += "<rect x=\(q(margin + Double(j) * cell)) y=\(q(margin + Double(i) * cell)) width=\(q(cell)) height=\(q(cell)) fill=\"rgba(\(color),\(String(format: "%.3f", share)))\" stroke=\"#eee\" data-count=\"\(m[i][j])\"><title>true \(escape(name)), predicted \(escape(j < names.count ? names[j] : String(j))): \(m[i][j])</title></rect>\n"
                if cell >= 20 && m[i][j] > 0 {
                    s += "<text x=\(q(margin + (Double(j) + 0.5) * cell)) y=\(q(margin + (Double(i) + 0.65) * cell)) text-anchor=\"middle\" class=\"cell\">\(m[i][j])</text>\n"
                }
            }
        }
        return s + "</svg>\n"
    }

    // MARK: Helpers

    static func svgOpen(height h: Double) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(h))\" viewBox=\"0 0 \(n(width)) \(n(h))\">\n"
    }

    static func axes(xTicks: [(Double, String)], yTicks: [(Double, String)], xLabel: String, yLabel: String) -> String {
        let x0 = left, x1 = width - right, y0 = height - bottom, y1 = top
        var s = "<line x1=\(q(x0)) y1=\(q(y0)) x2=\(q(x1)) y2=\(q(y0)) class=\"axis\"/><line x1=\(q(x0)) y1=\(q(y0)) x2=\(q(x0)) y2=\(q(y1)) class=\"axis\"/>\n"
        for (x, label) in xTicks {
            s += "<line x1=\(q(x)) y1=\(q(y0)) x2=\(q(x)) y2=\(q(y0 + 4)) class=\"axis\"/><text x=\(q(x)) y=\(q(y0 + 15)) text-anchor=\"middle\" class=\"tick\">\(escape(label))</text>\n"
        }
        for (y, label) in yTicks {
            s += "<line x1=\(q(x0)) y1=\(q(y)) x2=\(q(x1)) y2=\(q(y)) class=\"grid\"/><text x=\(q(x0 - 4)) y=\(q(y + 4)) text-anchor=\"end\" class=\"tick\">\(escape(label))</text>\n"
        }
        s += "<text x=\(q((x0 + x1) / 2)) y=\(q(y0 + 30)) text-anchor=\"middle\" class=\"axis-label\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(12 \(n((y0 + y1) / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"axis-label\">\(escape(yLabel))</text>\n"
        return s
    }

    /// About five round tick values from lo to hi.
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / 5, magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        guard step > 0, step.isFinite else { return [lo, hi] }
        var out: [Double] = []
        let first = ceil(lo / step)
        // Counted, not accumulated: huge or nearly equal bounds cannot loop forever.
        for k in 0..<12 {
            let v = (first + Double(k)) * step
            if v > hi + step * 1e-9 { break }
            out.append(v)
        }
        return out
    }

    /// A coordinate as a quoted attribute value, and as a bare number.
    static func q(_ v: Double) -> String { "\"" + n(v) + "\"" }
    static func n(_ v: Double) -> String { String(format: "%.2f", v) }
    static func format(_ v: Double) -> String { abs(v) >= 100 || v == 0 ? String(format: "%.0f", v) : String(format: "%.3g", v) }
    static func pct(_ v: Double?) -> String { v.map { String(format: "%.1f%%", 100 * $0) } ?? "–" }

    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
        h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 20px; } h3 { font-size: 15px; margin: 14px 0 4px; }
        table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
        table.settings td { text-align: left; font-family: monospace; font-size: 12px; }
        .runs { display: flex; flex-wrap: wrap; gap: 24px; } .run { flex: 0 0 auto; }
        .axis { stroke: #444; } .grid { stroke: #e5e5e5; } .tick, .legend { font-size: 11px; fill: #333; }
        .axis-label { font-size: 12px; fill: #222; } .cell { font-size: 10px; fill: #000; }
        </style></head>
        <body>
        \(body)<p class="footer">Written by kiln; self-contained (inline SVG, no network).</p>
        <script>
        // Marks the page rendered when every chart has a size (checked by the tests in headless Chromium).
        const charts = Array.from(document.querySelectorAll("svg"));
        const empty = charts.filter(c => { const b = c.getBoundingClientRect(); return !(b.width > 0 && b.height > 0); });
        if (empty.length) { console.error("empty charts: " + empty.length); }
        document.body.dataset.rendered = empty.length ? "error" : String(charts.length);
        </script>
        </body></html>

        """
    }
}
