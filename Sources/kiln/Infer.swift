import ArgumentParser
import Foundation
import Graph
import Imaging
import Runtime

extension Preprocessing.Resize: ExpressibleByArgument {}

extension Kiln {
    struct Infer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Classify every PNG and JPEG under a folder, in batches.",
            discussion: """
                Walks DIR recursively in sorted order (hidden entries skipped, symbolic links followed, loops reported), decodes images in parallel while the model runs the previous batch, and writes one row per image: its path and the top-k classes with probabilities (softmax of the scores). Preprocessing comes from the model's metadata (written by `kiln export`); a model without it is resized directly to its input size with pixels in [0, 1], which is said on stderr.

                Files that cannot be used — empty, truncated, not an image, content not matching the extension, unsupported format, too many pixels, unreadable, symbolic-link loops — are skipped with one line each on stderr (and in --errors, by default OUTPUT.errors.txt next to --output); every good image is still classified. Exit code 0: all files used; 2: some skipped; 1: the run failed.

                Examples:
                  kiln infer model.onnx photos/ --output predictions.csv
                  kiln infer model.onnx photos/ --top-k 3 --output predictions.jsonl --batch 64
                """
        )

        @Argument(help: "The model (.onnx or .kiln with weights).")
        var model: String
        @Argument(help: "The folder of images.")
        var directory: String
        @Option(help: "Images per batch.")
        var batch: Int = 128
        @Option(name: .customLong("top-k"), help: "Classes per image in the output.")
        var topK: Int = 5
        @Option(help: "Output file: .csv or .jsonl (default: CSV on stdout).")
        var output: String?
        @Option(help: "File listing skipped files (default: OUTPUT.errors.txt when --output is given).")
        var errors: String?
        @Option(help: "Threads (default: all cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @OptionGroup var preprocess: PreprocessOptions
        @OptionGroup var tuning: TuneOptions
        @OptionGroup var precision: PrecisionOptions

        func run() throws {
            var skipped = 0
            Interrupts.shared.install { [output] sig in
                "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); no output written" + (output.map { " (\($0) is unchanged)" } ?? "")
            }
            try reportingErrors {
                guard topK >= 1 else { throw CLIError("--top-k must be at least 1") }
                let format: String
                switch output.map({ URL(fileURLWithPath: $0).pathExtension.lowercased() }) {
                case nil, "csv"?: format = "csv"
                case "jsonl"?: format = "jsonl"
                default: throw CLIError("\(output!): the output must be .csv or .jsonl")
                }
                // Under mpirun each rank classifies a contiguous share of the sorted listing and
                // rank 0 writes every row and error in listing order: the same files as one process.
                let cluster = try Cluster.start()
                let graph = try loadClassifier(model)
                let p = try preprocess.preprocessing(for: graph)
                let listing = try FolderListing.walk(directory)
                let files = cluster.isDistributed ? PathList(cluster.share(of: listing.files.count).lazy.map { listing.files[$0] }) : listing.files
                let engine = try FolderInference(graph: graph, preprocessing: p, batch: batch, threads: threads, pixelLimit: preprocess.pixelLimit,
                                                 options: try precision.applied(tuning.compileOptions))
                let (names, _) = modelClasses(graph, classes: engine.classes)
                let report = cluster.isRoot ? try SkipReport(errorsFile: errors ?? output.map { $0 + ".errors.txt" }) : nil
                let sink = cluster.isRoot ? try OutputSink(path: output) : nil
                if let report {
                    for problem in listing.problems { try report.add(problem) }
                    if listing.ignored > 0 { writeStderr("kiln: note: ignored \(listing.ignored) files that are not PNG or JPEG by name\n") }
                }
                let k = min(topK, engine.classes)
                if format == "csv" {
                    try sink?.write("path," + (1...k).map { "label\($0),probability\($0)" }.joined(separator: ",") + "\n")
                }
                // A rank's rows and error lines, kept for rank 0 when the job is distributed.
                var rows: [UInt8] = [], problems: [UInt8] = []
                let bar = ProgressBar()
                let start = DispatchTime.now().uptimeNanoseconds
                var done = 0
                try engine.run(files) { results in
                    var text = ""
                    for r in results {
                        guard let logits = r.logits else {
                            if cluster.isDistributed { problems += Array("\(r.error!.path): \(r.error!.reason)\n".utf8) } else { try report?.add(r.error!) }
                            continue
                        }
                        let probs = probabilities(logits)
                        let top = probs.indices.sorted { probs[$0] > probs[$1] || probs[$0] == probs[$1] && $0 < $1 }.prefix(k)
                        if format == "csv" {
                            text += csvField(r.path) + "," + top.map { "\(csvField(names[$0])),\(fixed6(probs[$0]))" }.joined(separator: ",") + "\n"
                        } else {
                            let entries = top.map { "{\"label\":\(jsonString(names[$0])),\"index\":\($0),\"probability\":\(fixed6(probs[$0]))}" }
                            text += "{\"path\":\(jsonString(r.path)),\"top\":[\(entries.joined(separator: ","))]}\n"
                        }
                    }
                    if cluster.isDistributed { rows += Array(text.utf8) } else { try sink?.write(text) }
                    done += results.count
                    guard cluster.isRoot else { return }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    let rate = Double(done) / max(seconds, 1e-9)
                    bar.show(String(format: "%d/%d images%@  %.0f img/s  ETA %@", done, files.count, cluster.isDistributed ? " (rank 0's share)" : "", rate,
                                    duration(Double(files.count - done) / max(rate, 1e-9))),
                             fraction: Double(done) / Double(max(files.count, 1)))
                }
                bar.clear()
                if cluster.isDistributed {
                    let allRows = cluster.gather(rows), allProblems = cluster.gather(problems)
                    if let allRows, let allProblems, let report {
                        try sink?.write(String(decoding: allRows, as: UTF8.self))
                        for line in String(decoding: allProblems, as: UTF8.self).split(separator: "\n") { try report.add(line: String(line)) }
                    }
                }
                try sink?.close()
                try report?.finish()
                // Every rank ends with the job's exit code.
                skipped = cluster.isDistributed ? cluster.allGather(report?.count ?? 0)[0] : report?.count ?? 0
                let classified = listing.files.count - (skipped - listing.problems.count)
                if cluster.isRoot {
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    writeStderr(String(format: "kiln: %d images classified in %.2f s (%.0f images/s)%@%@\n", classified, seconds,
                                       Double(listing.files.count) / max(seconds, 1e-9),
                                       cluster.isDistributed ? " by \(cluster.size) ranks" : "", output.map { ", written to \($0)" } ?? ""))
                }
                cluster.finish()
            }
            if skipped > 0 { throw ExitCode(2) }
        }
    }
}

/// Writes rows to a file (atomically: a temporary file renamed at the end) or to stdout.
final class OutputSink {
    let path: String?
    let temporary: String?
    let handle: FileHandle

    init(path: String?) throws {
        self.path = path
        if let path {
            let tmp = path + ".partial-\(getpid())"
            guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp) else {
                throw CLIError("\(path): cannot write here")
            }
            temporary = tmp
            handle = h
            Interrupts.shared.track(file: tmp)
        } else {
            temporary = nil
            handle = FileHandle.standardOutput
        }
    }

    var finished = false

    /// Appends `s`; a failed write (a full disk) is an error naming the file, and the partial
    /// file is removed when the sink goes.
    func write(_ s: String) throws {
        var s = s
        let e = s.withUTF8 { writeFully(handle.fileDescriptor, UnsafeRawBufferPointer($0)) }
        guard e == 0 else { throw CLIError("\(path ?? "standard output"): cannot write: \(String(cString: strerror(e)))") }
    }

    func close() throws {
        guard let path, let temporary else { return }
        try handle.synchronize()
        try handle.close()
        guard rename(temporary, path) == 0 else { throw CLIError("\(path): cannot move the finished output into place") }
        Interrupts.shared.untrack(file: temporary)
        finished = true
    }

    /// A run that failed leaves no partial file behind (an earlier complete output stays).
    deinit {
        if let temporary, !finished {
            try? handle.close()
            unlink(temporary)
            Interrupts.shared.untrack(file: temporary)
        }
    }
}

func csvField(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

func jsonString(_ s: String) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.withoutEscapingSlashes]
    return String(decoding: (try? e.encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
}

/// A probability in [0, 1] with six decimals ("0.012345"), without Foundation's formatter
/// (it dominated the time of writing a row).
func fixed6(_ p: Float) -> String {
    let micro = Int((Double(min(max(p, 0), 1)) * 1e6).rounded())
    let fraction = String(micro % 1_000_000)
    return "\(micro / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
}
