import Foundation
import Testing

/// The long-tail methods as a user runs them: the new losses train, and the classifier
/// adjustments `kiln export` folds in give in onnxruntime what `kiln eval` gives.
@Suite("Long-tail methods: losses in kiln train, adjustments folded into the export", .serialized)
struct LongTailCLITests {
    static let images = TrainCLITests.images

    /// A short run (ResNet-8, the ratio-10 subset, 2 epochs) with `loss`'s flags.
    func train(_ out: String, _ loss: [String]) throws {
        let r = try run(kilnBinary, ["train", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--split-first", "400",
                                     "--lt-profile", "exp", "--lt-ratio", "10", "--epochs", "2", "--batch", "64", "--warmup", "1",
                                     "--seed", "3", "--threads", "2", "--out", out] + loss)
        #expect(r.status == 0, "\(loss): \(r.stderr)")
    }

    @Test("exported with --tau-norm and --logit-adjust (a Linear head's bias, a cosine head's Sub): onnxruntime's predictions equal kiln eval's with the same adjustment",
          arguments: [["--loss", "ce"], ["--loss", "ldam", "--rule", "drw"]])
    func foldedAdjustments(_ loss: [String]) throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("adjust-\(loss[1])")
        let out = dir.appendingPathComponent("run").path
        try train(out, loss)
        let plain = dir.appendingPathComponent("plain.onnx").path, taunorm = dir.appendingPathComponent("taunorm.onnx").path
        let adjusted = dir.appendingPathComponent("adjusted.onnx").path
        #expect(try kiln("export", out, "-o", plain).status == 0)
        #expect(try kiln("export", out, "-o", taunorm, "--tau-norm", "0.5").status == 0)
        let e = try kiln("export", out, "-o", adjusted, "--tau-norm", "0.5", "--logit-adjust", "1.5")
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.contains(loss[1] == "ce" ? "folded into linear's bias" : "as a Sub after"), "\(e.stdout)")

        let script = repositoryRoot.appendingPathComponent("scripts").path
        let data = dir.appendingPathComponent("data").path, folder = dir.appendingPathComponent("test-png").path
        #expect(try run(python, ["\(script)/demo_check.py", "prepare", plain, Self.images, "400", data]).status == 0)
        #expect(try run(python, ["\(script)/demo_check.py", "pngs", Self.images, "400", folder]).status == 0)
        let folded = dir.appendingPathComponent("folded.json").path, posthoc = dir.appendingPathComponent("posthoc.json").path
        #expect(try kiln("eval", adjusted, folder, "--report", folded).status == 0)
        #expect(try kiln("eval", taunorm, folder, "--logit-adjust", "1.5", "--report", posthoc).status == 0)
        let check = try run(python, ["\(script)/adjust_check.py", plain, taunorm, adjusted, "0.5", "1.5", data, folded, posthoc])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }

    @Test("the new losses train (finite loss, a checkpoint and an export), and their settings are checked")
    func newLosses() throws {
        let dir = try scratch("losses")
        for loss in [["--loss", "la", "--tau", "1.5"], ["--loss", "bs"], ["--loss", "vs", "--vs-gamma", "0.3", "--label-smoothing", "0.1"],
                     ["--loss", "ce", "--wd", "5e-3", "--max-norm", "1"]] {
            let out = dir.appendingPathComponent(loss[1]).path
            try train(out, loss)
            let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            #expect(metrics.count == 2)
            #expect(FileManager.default.fileExists(atPath: out + "/model.onnx"))
        }
        for (flags, message) in [(["--loss", "ce", "--tau", "1"], "--tau goes with --loss la or vs"),
                                 (["--loss", "focal", "--label-smoothing", "0.1"], "--label-smoothing goes with the cross-entropy losses"),
                                 (["--loss", "la", "--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
                                 (["--loss", "ldam", "--max-norm", "1"], "LDAM's cosine head normalises them already")] {
            let r = try run(kilnBinary, ["train", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--out", dir.appendingPathComponent("bad").path] + flags)
            #expect(r.status != 0)
            #expect(r.stderr.contains(message), "\(flags): \(r.stderr)")
        }
    }

    @Test("kiln report and kiln eval --report FILE.html: the plots hold the runs' metrics, and headless Chromium renders the pages without errors")
    func htmlReports() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("report")
        let ce = dir.appendingPathComponent("ce").path, ldam = dir.appendingPathComponent("ldam-drw").path
        try train(ce, ["--loss", "ce"])
        try train(ldam, ["--loss", "ldam", "--rule", "drw"])
        let page = dir.appendingPathComponent("report.html").path
        let r = try kiln("report", ce, ldam, "-o", page)
        #expect(r.status == 0, "\(r.stderr)")
        let script = repositoryRoot.appendingPathComponent("scripts").path
        let check = try run(python, ["\(script)/report_check.py", "runs", page, ce, ldam])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")

        let folder = dir.appendingPathComponent("test-png").path
        #expect(try run(python, ["\(script)/demo_check.py", "pngs", Self.images, "400", folder]).status == 0)
        let json = dir.appendingPathComponent("eval.json").path, html = dir.appendingPathComponent("eval.html").path
        #expect(try kiln("eval", ldam + "/model.onnx", folder, "--report", json).status == 0)
        #expect(try kiln("eval", ldam + "/model.onnx", folder, "--report", html).status == 0)
        let evalCheck = try run(python, ["\(script)/report_check.py", "eval", html, json])
        #expect(evalCheck.status == 0, "\(evalCheck.stdout)\(evalCheck.stderr)")

        let missing = try kiln("report", dir.path, "-o", dir.appendingPathComponent("x.html").path)
        #expect(missing.status != 0 && missing.stderr.contains("checkpoint"), "\(missing.stderr)")
        let notHTML = try kiln("report", ce, "-o", dir.appendingPathComponent("x.txt").path)
        #expect(notHTML.status != 0 && notHTML.stderr.contains("must be an .html file"), "\(notHTML.stderr)")
    }

    @Test("--recipe lt folds its logit adjustment into validation and the export: the last epoch's validation equals kiln eval of model.onnx")
    func recipeFoldsAdjustment() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("recipe-lt")
        let out = dir.appendingPathComponent("run").path
        let r = try run(kilnBinary, ["train", "--recipe", "lt", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--split-first", "400",
                                     "--lt-profile", "exp", "--lt-ratio", "10", "--epochs", "2", "--batch", "64", "--warmup", "1", "--seed", "3",
                                     "--threads", "2", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("logit adjustment τ = 1.0"), "\(r.stdout)")
        let folder = dir.appendingPathComponent("test-png").path
        #expect(try run(python, [repositoryRoot.appendingPathComponent("scripts/demo_check.py").path, "pngs", Self.images, "400", folder]).status == 0)
        let report = dir.appendingPathComponent("eval.json").path
        #expect(try kiln("eval", out + "/model.onnx", folder, "--report", report).status == 0)
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let last = try #require(try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any])
        let val = try #require(last["val"] as? [String: Any])
        let evaluated = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        #expect((val["perClass"] as? [Double]) == (evaluated["perClass"] as? [Double]))
        #expect((val["confusion"] as? [[Int]]) == (evaluated["confusion"] as? [[Int]]))
    }

    @Test("kiln report on doctored metrics (a ragged confusion matrix, huge and equal losses, a line that is not JSON) draws what it can or names the line")
    func hostileMetrics() throws {
        let dir = try scratch("report-hostile")
        let out = dir.appendingPathComponent("run").path
        try train(out, ["--loss", "ce"])
        let path = out + "/metrics.jsonl"
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        var doctored = lines.map { $0.replacingOccurrences(of: #""loss":[0-9.e+-]+"#, with: "\"loss\":-1e17", options: .regularExpression) }
        doctored[doctored.count - 1] = doctored[doctored.count - 1].replacingOccurrences(of: #""confusion":\[\["#, with: "\"confusion\":[[7],[", options: .regularExpression)
        try doctored.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let page = dir.appendingPathComponent("r.html").path
        let r = try kiln("report", out, "-o", page)
        #expect(r.status == 0, "\(r.stderr)")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains("not square"))
        #expect(!html.contains("nan"))
        try (lines + ["{not json"]).joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try kiln("report", out, "-o", page)
        #expect(bad.status != 0 && bad.stderr.contains("line \(lines.count + 1)"), "\(bad.stderr)")
    }
}
