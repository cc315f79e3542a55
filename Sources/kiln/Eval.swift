import ArgumentParser
import Foundation
import Graph
import Imaging
import Runtime
import Train

extension Kiln {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate a classifier on a class-per-subfolder folder: overall, per class, and by shot group.",
            discussion: """
                DIR holds one subfolder per class, named as the model's classes (the class names `kiln export` stores; a model without them uses the subfolders in sorted order). Prints top-1 and top-5, mean per-class accuracy, many/medium/few-shot accuracy (more than 100, 20 to 100, fewer than 20 training images, from the class counts stored in the model), per-class accuracy and the confusion matrix. --report FILE writes all of it as JSON, or with FILE.html as a self-contained page (per-class accuracy against training images, the confusion matrix as a heat map; see `kiln report`). --logit-adjust TAU subtracts τ·log(prior) from the scores before ranking (post-hoc logit adjustment, Menon et al. 2021), the prior from the stored class counts. Files that cannot be used are skipped and listed as by `kiln infer` (exit code 2).

                Examples:
                  kiln eval model.onnx test-images/
                  kiln eval model.onnx test-images/ --logit-adjust 1 --report eval.json
                  kiln eval model.onnx test-images/ --precision int8 --calibrate train-images/

                --precision bf16 computes the convolutions in bfloat16 (where the CPU has a bf16 dot product and the layer runs faster so) and also the f32 model on the same images, printing the difference as for int8. --precision int8 quantizes the model first as `kiln quantize` does with its defaults (calibrated on up to --calibration-images images of --calibrate), evaluates the int8 model, and also the f32 model on the same images, printing the difference: overall, per shot group, and the share of images whose top-1 is unchanged. `kiln eval MODEL-int8.onnx` evaluates a model already quantized.
                """
        )

        @Argument(help: "The model (.onnx, or .kiln with weights).")
        var model: String
        @Argument(help: "A folder with one subfolder of images per class.")
        var directory: String
        @Option(help: "Images per batch.")
        var batch: Int = 128
        @Option(help: "Threads (default: all cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "Write the results as JSON to this file.")
        var report: String?
        @Option(name: .customLong("logit-adjust"), help: "Subtract τ·log(class prior) from the scores (needs the model's class counts).")
        var logitAdjust: Double?
        @Option(help: "File listing skipped files.")
        var errors: String?
        @Option(help: "f32 (the model as it is), bf16 (convolutions in bfloat16 where the CPU has a bf16 dot product) or int8 (quantized first; needs --calibrate).")
        var precision: String = "f32"
        @Option(help: "With --precision int8: a folder of calibration images.")
        var calibrate: String?
        @Option(name: .customLong("calibration-images"), help: "With --precision int8: calibration images to use (at most).")
        var calibrationImages: Int = 256
        @OptionGroup var preprocess: PreprocessOptions
        @OptionGroup var tuning: TuneOptions

        struct Report: Encodable {
            var model: String
            var directory: String
            var images: Int
            var skipped: Int
            var top1: Double
            var top5: Double
            var meanClass: Double
            var many: Double?
            var medium: Double?
            var few: Double?
            var classes: [String]
            var trainingCounts: [Int]?
            var perClass: [Double?]
            var imagesPerClass: [Int]
            /// confusion[true][predicted]
            var confusion: [[Int]]
            var logitAdjust: Double?
            var precision: String
            /// With --precision int8 or bf16: the f32 model on the same images.
            var float: FloatComparison?
        }

        struct FloatComparison: Encodable {
            var top1: Double
            var meanClass: Double
            var many: Double?
            var medium: Double?
            var few: Double?
            /// The share of images whose top-1 is the same in both.
            var agreement: Double
        }

        func run() throws {
            var skipped = 0
            Interrupts.shared.install { sig in "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); no report written" }
            try reportingErrors {
                // Under mpirun each rank scores a contiguous share of the files and rank 0 prints
                // and writes everything, as one process would.
                let cluster = try Cluster.start()
                guard ["f32", "bf16", "int8"].contains(precision) else { throw CLIError("--precision must be f32, bf16 or int8, got '\(precision)'") }
                guard precision == "int8" || calibrate == nil else { throw CLIError("--calibrate goes with --precision int8") }
                guard calibrationImages >= 1 else { throw CLIError("--calibration-images must be at least 1") }
                let graph = try loadClassifier(model)
                let p = try preprocess.preprocessing(for: graph)
                var evaluated = graph
                if precision == "int8" {
                    guard let calibrate else { throw CLIError("--precision int8 needs --calibrate FOLDER (the images to calibrate the quantization on)") }
                    let q = try calibratedQuantization(graph, preprocessing: p, folder: calibrate, images: calibrationImages,
                                                       options: Quantization.Options(), batch: min(batch, 16), threads: threads,
                                                       pixelLimit: preprocess.pixelLimit)
                    evaluated = q.graph
                    if isFirstRank { writeStderr("kiln: quantized to int8 (kiln quantize's defaults) on \(q.used) calibration images\n") }
                }
                let engine = try FolderInference(graph: evaluated, preprocessing: p, batch: batch, threads: threads, pixelLimit: preprocess.pixelLimit,
                                                 options: precision == "bf16" ? try PrecisionOptions.apply("bf16", to: tuning.compileOptions) : tuning.compileOptions)
                let classes = engine.classes
                var (names, counts) = modelClasses(graph, classes: classes)
                let folders = try ImageFolder.classFolders(directory)
                guard !folders.isEmpty else { throw CLIError("\(directory): no class subfolders") }
                if graph.metadata["kiln.class_names"] == nil {
                    guard folders.count <= classes else { throw CLIError("\(directory) has \(folders.count) class folders, the model \(classes) classes") }
                    for (i, f) in folders.enumerated() { names[i] = f }
                }
                let unknown = folders.filter { !names.contains($0) }
                guard unknown.isEmpty else {
                    throw CLIError("\(directory): subfolders \(unknown.prefix(5).joined(separator: ", ")) are not classes of the model (\(names.prefix(10).joined(separator: ", "))\(names.count > 10 ? ", …" : ""))")
                }
                var prior: [Float]? = nil
                if let tau = logitAdjust {
                    guard let counts else { throw CLIError("--logit-adjust needs the class counts `kiln export` stores in the model") }
                    if let folded = graph.metadata[ClassifierAdjustment.metadataKey], folded.contains("logitAdjust") {
                        printNote("the model already holds a logit adjustment (\(folded)); --logit-adjust \(tau) adds another")
                    }
                    prior = LongTail.logPrior(counts: counts).map { Float(tau * $0) }
                }
                let reportSkips = cluster.isRoot ? try SkipReport(errorsFile: errors) : nil
                var files = PathList(), labels: [Int] = []
                for f in folders {
                    let listing = try FolderListing.walk(directory + "/" + f)
                    for problem in listing.problems { try reportSkips?.add(problem) }
                    files.append(contentsOf: listing.files)
                    labels += [Int](repeating: names.firstIndex(of: f)!, count: listing.files.count)
                }
                // Results arrive in file order: the k-th result is files[k], labelled labels[k].
                // Per file: its top-1 and whether the label is in its top 5, nil where skipped
                // (on rank 0 all files; the other ranks of a distributed job get an empty list).
                func score(_ engine: FolderInference, skips: SkipReport?, what: String) throws -> [(top1: Int, top5: Bool)?] {
                    let mine = cluster.share(of: files.count)
                    let share = cluster.isDistributed ? PathList(mine.lazy.map { files[$0] }) : files
                    var out: [(top1: Int, top5: Bool)?] = []
                    out.reserveCapacity(share.count)
                    var problems: [UInt8] = []
                    let bar = ProgressBar()
                    try engine.run(share) { results in
                        for r in results {
                            let y = labels[mine.lowerBound + out.count]
                            guard var scores = r.logits else {
                                if cluster.isDistributed { problems += Array("\(r.error!.path): \(r.error!.reason)\n".utf8) } else { try skips?.add(r.error!) }
                                out.append(nil)
                                continue
                            }
                            if let prior { for j in 0..<classes { scores[j] -= prior[j] } }
                            let ranked = scores.indices.sorted { scores[$0] > scores[$1] || scores[$0] == scores[$1] && $0 < $1 }
                            out.append((ranked[0], ranked.prefix(5).contains(y)))
                        }
                        if cluster.isRoot {
                            bar.show("\(what)\(out.count)/\(share.count) images\(cluster.isDistributed ? " (rank 0's share)" : "")",
                                     fraction: Double(out.count) / Double(max(share.count, 1)))
                        }
                    }
                    bar.clear()
                    guard cluster.isDistributed else { return out }
                    // Each file as one Int32 (2·top-1 + top-5 hit, −1 when skipped), gathered in rank order.
                    let encoded = out.flatMap { r -> [UInt8] in
                        withUnsafeBytes(of: Int32(r.map { 2 * $0.top1 + ($0.top5 ? 1 : 0) } ?? -1).littleEndian) { Array($0) }
                    }
                    let all = cluster.gather(encoded), allProblems = cluster.gather(problems)
                    guard let all, let allProblems else { return [] }
                    for line in String(decoding: allProblems, as: UTF8.self).split(separator: "\n") { try skips?.add(line: String(line)) }
                    return stride(from: 0, to: all.count, by: 4).map { k in
                        let v = Int32(littleEndian: all[k..<(k + 4)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) })
                        return v < 0 ? nil : (Int(v / 2), v % 2 == 1)
                    }
                }
                let scored = try score(engine, skips: reportSkips, what: precision == "f32" ? "" : "\(precision): ")
                // With int8 or bf16: the f32 model on the same files (the same ones decode, so the same are skipped).
                let reference = precision != "f32"
                    ? try score(try FolderInference(graph: graph, preprocessing: p, batch: batch, threads: threads, pixelLimit: preprocess.pixelLimit,
                                                    options: tuning.compileOptions),
                                skips: nil, what: "f32: ")
                    : nil
                try reportSkips?.finish()
                skipped = cluster.isDistributed ? cluster.allGather(reportSkips?.count ?? 0)[0] : reportSkips?.count ?? 0
                guard cluster.isRoot else { cluster.finish(); return }
                var predictions: [Int] = [], truth: [Int] = [], top5 = 0
                var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
                for (k, s) in scored.enumerated() {
                    guard let s else { continue }
                    predictions.append(s.top1)
                    truth.append(labels[k])
                    if s.top5 { top5 += 1 }
                    confusion[labels[k]][s.top1] += 1
                }
                guard !truth.isEmpty else { throw CLIError("\(directory): no image could be evaluated") }
                var comparison: FloatComparison? = nil
                if let reference {
                    let pairs = zip(scored, reference).compactMap { a, b in a.flatMap { a in b.map { (a.top1, $0.top1) } } }
                    let f = Evaluation(predictions: pairs.map(\.1), labels: zip(scored, labels).compactMap { $0.0 == nil ? nil : $0.1 },
                                       trainingCounts: counts ?? [Int](repeating: 0, count: classes))
                    comparison = FloatComparison(top1: f.top1, meanClass: f.meanClass, many: counts == nil ? nil : f.many,
                                                 medium: counts == nil ? nil : f.medium, few: counts == nil ? nil : f.few,
                                                 agreement: Double(pairs.filter { $0.0 == $0.1 }.count) / Double(max(pairs.count, 1)))
                }
                let e = Evaluation(predictions: predictions, labels: truth, trainingCounts: counts ?? [Int](repeating: 0, count: classes))
                let perClassImages = (0..<classes).map { c in truth.filter { $0 == c }.count }
                let r = Report(model: model, directory: directory, images: truth.count, skipped: skipped, top1: e.top1,
                               top5: Double(top5) / Double(truth.count), meanClass: e.meanClass,
                               many: counts == nil ? nil : e.many, medium: counts == nil ? nil : e.medium, few: counts == nil ? nil : e.few,
                               classes: names, trainingCounts: counts, perClass: e.perClass, imagesPerClass: perClassImages,
                               confusion: confusion, logitAdjust: logitAdjust, precision: precision, float: comparison)
                emit(table(r))
                if let c = comparison {
                    func change(_ a: Double?, _ b: Double?) -> String {
                        guard let a, let b else { return "–" }
                        return String(format: "%.1f%% → %.1f%%", 100 * a, 100 * b)
                    }
                    var line = "\(precision) against f32 on the same images: top-1 \(change(c.top1, r.top1)), mean per-class \(change(c.meanClass, r.meanClass))"
                    if counts != nil { line += ", many-shot \(change(c.many, r.many)), medium-shot \(change(c.medium, r.medium)), few-shot \(change(c.few, r.few))" }
                    emit(line + String(format: "; same top-1 on %.1f%% of the images\n", 100 * c.agreement))
                }
                if let report {
                    if report.lowercased().hasSuffix(".html") || report.lowercased().hasSuffix(".htm") {
                        var evaluation = e
                        evaluation.confusion = confusion
                        var settings: [(String, String)] = [("model", model), ("folder", directory), ("images", String(truth.count)),
                                                            ("skipped files", String(skipped)), ("top-5", String(format: "%.2f%%", 100 * r.top5)),
                                                            ("precision", precision)]
                        if let tau = logitAdjust { settings.append(("logit adjustment τ", String(tau))) }
                        let page = HTMLReport.evaluation(title: "kiln eval: \((model as NSString).lastPathComponent) on \(directory)", evaluation: evaluation,
                                                         classNames: names, trainingCounts: counts, settings: settings)
                        try AtomicFile.write(Array(page.utf8), to: report)
                    } else {
                        let enc = JSONEncoder()
                        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                        try AtomicFile.write([UInt8](try enc.encode(r)), to: report)
                    }
                    emit("report written to \(report)\n")
                }
                cluster.finish()
            }
            if skipped > 0 { throw ExitCode(2) }
        }

        func table(_ r: Report) -> String {
            func pct(_ v: Double?) -> String { v.map { String(format: "%.1f%%", 100 * $0) } ?? "–" }
            var s = "\(r.images) images in \(r.classes.count) classes\(r.logitAdjust.map { ", logit adjustment τ = \($0)" } ?? "")"
                + (r.precision == "int8" ? ", the model quantized to int8" : r.precision == "bf16" ? ", convolutions in bf16" : "") + "\n"
            s += "top-1 \(pct(r.top1))  top-5 \(pct(r.top5))  mean per-class \(pct(r.meanClass))\n"
            if r.trainingCounts != nil {
                s += "many-shot (>100) \(pct(r.many))  medium-shot (20-100) \(pct(r.medium))  few-shot (<20) \(pct(r.few))\n"
            }
            let width = max(8, r.classes.map(\.count).max() ?? 0)
            s += "\n" + "class".padding(toLength: width, withPad: " ", startingAt: 0) + "  accuracy  images  trained"
            let showMatrix = r.classes.count <= 20
            if showMatrix { s += "   confusion (predicted →)" }
            s += "\n"
            for c in r.classes.indices where r.imagesPerClass[c] > 0 || r.classes.count <= 20 {
                s += r.classes[c].padding(toLength: width, withPad: " ", startingAt: 0)
                func right(_ t: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - t.count)) + t }
                s += "  " + right(pct(r.perClass[c]), 8) + "  " + right(String(r.imagesPerClass[c]), 6) + "  " + right(r.trainingCounts.map { String($0[c]) } ?? "–", 7)
                if showMatrix { s += "   " + r.confusion[c].map { String(format: "%4d", $0) }.joined() }
                s += "\n"
            }
            return s
        }
    }
}
