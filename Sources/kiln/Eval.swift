import ArgumentParser
import Foundation
import Graph
import Imaging
import Train

extension Kiln {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate a classifier on a class-per-subfolder folder: overall, per class, and by shot group.",
            discussion: """
                DIR holds one subfolder per class, named as the model's classes (the class names `kiln export` stores; a model without them uses the subfolders in sorted order). Prints top-1 and top-5, mean per-class accuracy, many/medium/few-shot accuracy (more than 100, 20 to 100, fewer than 20 training images, from the class counts stored in the model), per-class accuracy and the confusion matrix. --report FILE writes all of it as JSON. --logit-adjust TAU subtracts τ·log(prior) from the scores before ranking (post-hoc logit adjustment, Menon et al. 2021), the prior from the stored class counts. Files that cannot be used are skipped and listed as by `kiln infer` (exit code 2).

                Examples:
                  kiln eval model.onnx test-images/
                  kiln eval model.onnx test-images/ --logit-adjust 1 --report eval.json
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
        @OptionGroup var preprocess: PreprocessOptions

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
        }

        func run() throws {
            var skipped = 0
            Interrupts.shared.install { sig in "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); no report written" }
            try reportingErrors {
                let graph = try loadClassifier(model)
                let p = try preprocess.preprocessing(for: graph)
                let engine = try FolderInference(graph: graph, preprocessing: p, batch: batch, threads: threads, pixelLimit: preprocess.pixelLimit)
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
                    let total = Double(counts.reduce(0, +))
                    prior = counts.map { Float(tau * Foundation.log(max(Double($0), 1e-12) / total)) }
                }
                let reportSkips = try SkipReport(errorsFile: errors)
                var files = PathList(), labels: [Int] = []
                for f in folders {
                    let listing = try FolderListing.walk(directory + "/" + f)
                    for problem in listing.problems { try reportSkips.add(problem) }
                    files.append(contentsOf: listing.files)
                    labels += [Int](repeating: names.firstIndex(of: f)!, count: listing.files.count)
                }
                // Results arrive in file order: the k-th result is files[k], labelled labels[k].
                var position = 0
                var predictions: [Int] = [], truth: [Int] = [], top5 = 0
                var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
                let bar = ProgressBar()
                try engine.run(files) { results in
                    for r in results {
                        let y = labels[position]
                        position += 1
                        guard var scores = r.logits else { try reportSkips.add(r.error!); continue }
                        if let prior { for j in 0..<classes { scores[j] -= prior[j] } }
                        let ranked = scores.indices.sorted { scores[$0] > scores[$1] || scores[$0] == scores[$1] && $0 < $1 }
                        predictions.append(ranked[0])
                        truth.append(y)
                        if ranked.prefix(5).contains(y) { top5 += 1 }
                        confusion[y][ranked[0]] += 1
                    }
                    bar.show("\(predictions.count)/\(files.count) images", fraction: Double(predictions.count) / Double(max(files.count, 1)))
                }
                bar.clear()
                try reportSkips.finish()
                skipped = reportSkips.count
                guard !truth.isEmpty else { throw CLIError("\(directory): no image could be evaluated") }
                let e = Evaluation(predictions: predictions, labels: truth, trainingCounts: counts ?? [Int](repeating: 0, count: classes))
                let perClassImages = (0..<classes).map { c in truth.filter { $0 == c }.count }
                let r = Report(model: model, directory: directory, images: truth.count, skipped: skipped, top1: e.top1,
                               top5: Double(top5) / Double(truth.count), meanClass: e.meanClass,
                               many: counts == nil ? nil : e.many, medium: counts == nil ? nil : e.medium, few: counts == nil ? nil : e.few,
                               classes: names, trainingCounts: counts, perClass: e.perClass, imagesPerClass: perClassImages,
                               confusion: confusion, logitAdjust: logitAdjust)
                emit(table(r))
                if let report {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                    try AtomicFile.write([UInt8](try enc.encode(r)), to: report)
                    emit("report written to \(report)\n")
                }
            }
            if skipped > 0 { throw ExitCode(2) }
        }

        func table(_ r: Report) -> String {
            func pct(_ v: Double?) -> String { v.map { String(format: "%.1f%%", 100 * $0) } ?? "–" }
            var s = "\(r.images) images in \(r.classes.count) classes\(r.logitAdjust.map { ", logit adjustment τ = \($0)" } ?? "")\n"
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
