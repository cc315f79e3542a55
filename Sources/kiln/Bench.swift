import ArgumentParser
import Compiler
import Foundation
import Graph
import Runtime
import Train

extension Kiln {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure compiled inference: throughput, latency percentiles, peak memory, load + compile time.",
            discussion: """
                Compiles the model for --batch, warms up, then times rounds of runs on a random
                batch. With --compare-ort, onnxruntime (ORT_ENABLE_ALL, same batch and threads,
                from the Python venv) runs the same model in rounds interleaved with Kiln's, and
                the ratios Kiln/onnxruntime are printed. Both load the same ONNX file (a .kiln
                model is first written as ONNX with seeded weights), and Kiln's load time is
                reading that file plus compiling. Medians are reported.

                With --train it times the compiled training step instead (forward, loss,
                backward, SGD update; LDAM on a cosine head by default, class counts of the
                exp ratio-100 profile), and --compare-torch runs the same step in PyTorch
                (bench/torch_train.py: eager, channels_last and torch.compile, interleaved)
                from the venv in $KILN_TORCH_VENV (default ~/.cache/kiln/venv-torch; create it
                with scripts/setup-torch.sh). PyTorch builds its own ResNet-32, so the
                comparison is for models/resnet32-cifar.kiln.

                Examples:
                  kiln bench models/resnet32-cifar.kiln --batch 128 --threads 2 --compare-ort
                  kiln bench models/resnet18.kiln --batch 1 --rounds 10
                  kiln bench models/resnet32-cifar.kiln --train --batch 128 --threads 2 --compare-torch
                """
        )

        @Argument(help: "The model (.kiln or .onnx).")
        var model: String

        @Option(help: "Batch size.")
        var batch: Int = 1

        @Option(help: "Threads (default: all cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount

        @Option(help: "Timed rounds (Kiln and onnxruntime alternate round by round).")
        var rounds: Int = 5

        @Option(help: "Runs per round.")
        var runs: Int = 10

        @Option(help: "Warm-up runs before timing.")
        var warmup: Int = 3

        @Flag(help: "Run onnxruntime on the same model in the same run and print ratios.")
        var compareOrt = false

        @Option(help: "Seed for weights of a .kiln model.")
        var seed: UInt64 = 0

        @Flag(help: "Also print time per kernel against its FLOPs (one extra timed pass of --runs runs).")
        var profile = false

        @Flag(help: "Time the training step (forward, loss, backward, SGD) instead of inference.")
        var train = false

        @Option(help: "With --train: the loss, ce, focal, ldam, la, bs or vs (--compare-torch: ce, focal or ldam).")
        var loss: LossKind = .ldam

        @Flag(help: "With --train: run PyTorch's ResNet-32 step (eager, channels_last, torch.compile) in the same run.")
        var compareTorch = false

        func validate() throws {
            guard batch >= 1, threads >= 1, rounds >= 1, runs >= 1, warmup >= 0 else {
                throw ValidationError("--batch, --threads, --rounds and --runs must be at least 1")
            }
            if compareTorch && ![.ce, .focal, .ldam].contains(loss) {
                throw ValidationError("--compare-torch runs PyTorch's step with ce, focal or ldam, not \(loss.rawValue)")
            }
        }

        // Long by choice: the benchmark protocol in the order it runs — load and compile,
        // start the anchor, warm up, alternate timed rounds, report, and the profile.
        @OptionGroup var tuning: TuneOptions
        @OptionGroup var precision: PrecisionOptions

        func run() throws {
            Interrupts.shared.install { _ in "interrupted; the benchmark's child processes and temporary files are gone" }
            if train { return try reportingErrors { try runTraining() } }
            try reportingErrors {
                // Kiln and onnxruntime load the same ONNX file. A .kiln network is first written
                // as ONNX with seeded weights by a child `kiln convert`, so neither the drawing
                // of weights nor its memory counts toward Kiln's load time or peak RSS.
                var onnxPath = model
                var temporary: String? = nil
                if !model.lowercased().hasSuffix(".onnx") {
                    let path = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-\(getpid()).onnx").path
                    Interrupts.shared.track(file: path)
                    let convert = Process()
                    convert.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
                    convert.arguments = ["convert", model, "-o", path, "--seed", String(seed)]
                    convert.standardOutput = FileHandle.nullDevice
                    try convert.run()
                    Interrupts.shared.track(child: convert)
                    convert.waitUntilExit()
                    guard convert.terminationStatus == 0 else { throw CLIError("could not convert \(model) to ONNX for the benchmark") }
                    onnxPath = path
                    temporary = path
                }
                defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
                let loadStart = Date()
                let graph = try loadGraph(onnxPath)
                // --profile times one program's steps; otherwise the fastest form (chunks per
                // thread for small images, see CompiledModel.forThroughput).
                let options = try precision.applied(tuning.compileOptions)
                let compiled: BatchModel = profile ? try CompiledModel.compile(graph, batch: batch, threads: threads, options: options)
                                                   : try CompiledModel.forThroughput(graph, batch: batch, threads: threads, options: options, note: printNote)
                let loadSeconds = Date().timeIntervalSince(loadStart)
                guard let input = graph.inputs.first, let perImage = Array(input.type.shape.dropFirst()).staticSizes else {
                    throw CLIError("the model has no image input with static dimensions")
                }
                var rng = KilnRandom(seed: 1)
                let p = try compiled.checkedInput(input.name, perImage: perImage.reduce(1, *))
                for i in p.indices { p[i] = Float(rng.normal()) }

                var ort: ORTServer? = nil
                if compareOrt {
                    ort = try ORTServer(model: onnxPath, batch: batch, threads: threads)
                }
                for _ in 0..<warmup { try compiled.execute() }
                if let ort { _ = try ort.run(warmup) }

                var kilnTimes: [Double] = [], ortTimes: [Double] = []
                for round in 0..<rounds {
                    for _ in 0..<runs {
                        let t = DispatchTime.now().uptimeNanoseconds
                        try compiled.execute()
                        kilnTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
                    }
                    if let ort {
                        // Let onnxruntime's worker threads stop spinning before Kiln's next round.
                        usleep(100_000)
                        ortTimes += try ort.run(runs)
                        usleep(100_000)
                    }
                    writeStderr("round \(round + 1)/\(rounds)\r")
                }
                writeStderr("\n")
                let rss = peakRSS()
                let k = Summary(kilnTimes, batch: batch)
                emit("model \(model), batch \(batch), threads \(threads), \(rounds)×\(runs) runs, kernels \(KernelLevel.name)\n")
                emit(pad("", 12) + pad("images/s", 13, right: true) + pad("p50 ms", 11, right: true) + pad("p90 ms", 11, right: true)
                     + pad("p99 ms", 11, right: true) + pad("peak RSS MiB", 13, right: true) + pad("load s", 13, right: true) + "\n")
                emit(row("kiln", k, rss, loadSeconds))
                if let ort {
                    let o = Summary(ortTimes, batch: batch)
                    let ortRSS = try ort.peakRSS()
                    emit(row("onnxruntime", o, ortRSS, ort.loadSeconds))
                    emit(pad("kiln/ort", 12) + String(format: " %12.2f %10.2f %10.2f %10.2f %12.2f %12.2f\n", k.throughput / o.throughput,
                                k.p50 / o.p50, k.p90 / o.p90, k.p99 / o.p99, Double(rss) / Double(ortRSS), loadSeconds / ort.loadSeconds))
                    emit("(throughput ratio > 1 and the other ratios < 1 favour Kiln)\n")
                    ort.close()
                }
                if profile, let c = compiled as? CompiledModel { try printProfile(c) }
                // A fixed batch that cannot be rebound runs as groups of its size.
                var gflop = Double(graph.stats(batch: batch).denseFlops) / 1e9
                if case .fixed(let n)? = graph.batchDimension, n != batch {
                    if let rebound = graph.rebindingBatch() { gflop = Double(rebound.stats(batch: batch).denseFlops) / 1e9 }
                    else { gflop *= Double((batch + n - 1) / n) }
                }
                emit(String(format: "kiln: %.1f GFLOP/s on conv+gemm (%.4f GFLOP per batch)\n", gflop / k.p50, gflop))
            }
        }

        /// The training step: Kiln's compiled step and, with --compare-torch, PyTorch's modes in
        /// rounds interleaved with it.
        func runTraining() throws {
            let loadStart = Date()
            var graph = try loadGraph(model)
            if graph.parameters.contains(where: { $0.initializer.tensor == nil }) { graph = try graph.materialized(seed: seed) }
            guard let classes = graph.outputs.first?.type.shape.last?.value else { throw CLIError("the model's first output must be logits [N, C]") }
            let counts = LongTail.counts(classes: classes, nMax: 5000, profile: .exp, ratio: 100)
            let step = try TrainingStep(model: graph, options: TrainingOptions(loss: loss.loss(classCounts: counts, gamma: 1)), batch: batch, threads: threads, seed: seed)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            var rng = KilnRandom(seed: 1)
            let images = (0..<(batch * step.imageShape.reduce(1, *))).map { _ in Float(rng.normal()) }
            let labels = (0..<batch).map { _ in Int(rng.next() % UInt64(classes)) }
            let weights = LongTail.classBalancedWeights(counts: counts).map(Float.init)
            func once() throws -> Double {
                let t = DispatchTime.now().uptimeNanoseconds
                let l = try images.withUnsafeBufferPointer { try step.run(images: $0, labels: labels, classWeights: weights, learningRate: 0.01) }
                guard l.isFinite else { throw CLIError("the loss became \(l) during the benchmark") }
                return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
            }
            var torch: TorchServer? = nil
            if compareTorch { torch = try TorchServer(batch: batch, threads: threads, loss: loss.rawValue, classes: classes) }
            for _ in 0..<warmup { _ = try once() }
            if let torch { try torch.warmup(warmup) }
            var kilnTimes: [Double] = []
            var torchTimes: [String: [Double]] = [:]
            for round in 0..<rounds {
                for _ in 0..<runs { kilnTimes.append(try once()) }
                if let torch {
                    for mode in torch.modes {
                        usleep(100_000)
                        torchTimes[mode, default: []] += try torch.run(mode, runs)
                    }
                    usleep(100_000)
                }
                writeStderr("round \(round + 1)/\(rounds)\r")
            }
            writeStderr("\n")
            let k = Summary(kilnTimes, batch: batch)
            emit("training step (\(loss.rawValue)) of \(model), batch \(batch), threads \(threads), \(rounds)×\(runs) runs, kernels \(KernelLevel.name)\n")
            emit(pad("", 23) + pad("images/s", 12, right: true) + pad("p50 ms", 11, right: true) + pad("p90 ms", 11, right: true)
                 + pad("p99 ms", 11, right: true) + pad("peak RSS MiB", 13, right: true) + pad("load s", 13, right: true) + "\n")
            func line(_ name: String, _ s: Summary, _ rss: Int, _ load: Double) -> String {
                pad(name, 22) + String(format: " %12.1f %10.3f %10.3f %10.3f %12.1f %12.3f\n", s.throughput, s.p50 * 1e3, s.p90 * 1e3,
                                       s.p99 * 1e3, Double(rss) / 1048576, load)
            }
            emit(line("kiln", k, peakRSS(), loadSeconds))
            if let torch {
                var best: (String, Summary)? = nil
                for mode in torch.modes {
                    guard let t = torchTimes[mode], !t.isEmpty else { continue }
                    let s = Summary(t, batch: batch)
                    emit(line("torch \(mode)", s, torch.peakRSS[mode] ?? 0, torch.loadSeconds[mode] ?? 0))
                    if best == nil || s.throughput > best!.1.throughput { best = (mode, s) }
                }
                if let (mode, s) = best {
                    emit(String(format: "kiln / fastest PyTorch (%@): throughput %.2f×, peak RSS %.2f×\n", mode as NSString,
                                k.throughput / s.throughput, Double(peakRSS()) / Double(max(torch.peakRSS[mode] ?? 1, 1))))
                }
                torch.close()
            }
            if profile { try printProfile(step.model) }
        }

        /// Time per step and per kernel kind against FLOPs, over --runs runs.
        func printProfile(_ compiled: CompiledModel, between: () throws -> Void = {}) throws {
            var perStep = [Double](repeating: 0, count: compiled.program.steps.count)
            for _ in 0..<runs {
                try between()
                try compiled.execute { i, seconds in perStep[i] += seconds }
            }
            let total = perStep.reduce(0, +)
            emit("\nprofile (median-free mean over \(runs) runs): step, kernel, ms, % of time, GFLOP/s\n")
            var byKernel: [String: (Double, Int)] = [:]
            for (i, s) in compiled.program.steps.enumerated() {
                let ms = perStep[i] / Double(runs) * 1e3
                let gf = Double(s.flops) / (perStep[i] / Double(runs)) / 1e9
                emit(String(format: "  %3d %-16@ %9.3f %6.1f%% %8.1f  %@ %@\n", i, s.kernel.name as NSString, ms, perStep[i] / total * 100, gf,
                            s.name as NSString, "\(s.outputs.first?.shape ?? [])" as NSString))
                let key = s.kernel.name
                byKernel[key] = ((byKernel[key]?.0 ?? 0) + perStep[i], (byKernel[key]?.1 ?? 0) + s.flops)
            }
            emit("by kernel:\n")
            for (k, v) in byKernel.sorted(by: { $0.value.0 > $1.value.0 }) {
                emit(String(format: "  %-16@ %9.3f ms %6.1f%% %8.1f GFLOP/s\n", k as NSString, v.0 / Double(runs) * 1e3, v.0 / total * 100,
                            Double(v.1) / (v.0 / Double(runs)) / 1e9))
            }
        }

        func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
            s.count >= w ? s : (right ? String(repeating: " ", count: w - s.count) + s : s + String(repeating: " ", count: w - s.count))
        }

        struct Summary {
            var p50: Double, p90: Double, p99: Double, throughput: Double
            init(_ t: [Double], batch: Int) {
                let s = t.sorted()
                func q(_ f: Double) -> Double { s[min(s.count - 1, Int((Double(s.count - 1) * f).rounded()))] }
                p50 = q(0.5); p90 = q(0.9); p99 = q(0.99)
                throughput = Double(batch) / p50
            }
        }

        func row(_ name: String, _ s: Summary, _ rss: Int, _ load: Double) -> String {
            pad(name, 12) + String(format: " %12.1f %10.3f %10.3f %10.3f %12.1f %12.3f\n", s.throughput, s.p50 * 1e3, s.p90 * 1e3, s.p99 * 1e3,
                   Double(rss) / 1048576, load)
        }
    }
}

/// Peak resident memory of this process (VmHWM), in bytes.
func peakRSS() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

/// A benchmark anchor in a Python child process (a script in bench/), driven line by line:
/// one JSON object per reply, `{"error": …}` for a failure.
class PythonChild {
    let process = Process()
    let input = Pipe(), output = Pipe()
    var buffer = Data()
    let what: String

    /// Starts `bench/<script>` with the venv named by `venvVariable` (or `defaultVenv` under
    /// the home directory); `missing` says how to create the venv.
    init(what: String, venvVariable: String, defaultVenv: String, missing: String, script: String, arguments: [String]) throws {
        self.what = what
        let venv = ProcessInfo.processInfo.environment[venvVariable] ?? (NSHomeDirectory() + "/" + defaultVenv)
        let python = venv + "/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw CLIError(missing.replacingOccurrences(of: "$VENV", with: venv)) }
        let installed = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("../../../bench/\(script)").standardized.path
        let path = FileManager.default.fileExists(atPath: installed) ? installed : "bench/\(script)"
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [path] + arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        Interrupts.shared.track(child: process)
    }

    /// A command to the child; a child that has gone (a closed pipe) shows as its missing reply.
    func send(_ line: String) {
        var text = line + "\n"
        _ = text.withUTF8 { writeFully(input.fileHandleForWriting.fileDescriptor, UnsafeRawBufferPointer($0)) }
    }

    func readJSON() throws -> [String: Any] {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = buffer[..<nl]
                buffer.removeSubrange(...nl)
                guard let obj = try JSONSerialization.jsonObject(with: line) as? [String: Any] else { throw CLIError("\(what): bad reply") }
                if let e = obj["error"] as? String { throw CLIError("\(what): \(e)") }
                return obj
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw CLIError("\(what) exited early (is the model valid for it?)") }
            buffer.append(chunk)
        }
    }

    func close() {
        send("quit")
        process.waitUntilExit()
    }
}

/// onnxruntime (bench/ort_server.py): "run N", "rss", "quit".
final class ORTServer: PythonChild {
    var loadSeconds = 0.0

    init(model: String, batch: Int, threads: Int) throws {
        try super.init(what: "onnxruntime", venvVariable: "KILN_VENV", defaultVenv: ".cache/kiln/venv",
                       missing: "--compare-ort needs the Python venv at $VENV (run scripts/setup.sh or set KILN_VENV)",
                       script: "ort_server.py", arguments: [model, String(batch), String(threads)])
        loadSeconds = try readJSON()["load_seconds"] as? Double ?? 0
    }

    func run(_ n: Int) throws -> [Double] {
        send("run \(n)")
        return try readJSON()["seconds"] as? [Double] ?? []
    }

    func peakRSS() throws -> Int {
        send("rss")
        return try readJSON()["peak_rss_bytes"] as? Int ?? 0
    }
}

/// PyTorch's ResNet-32 training step (bench/torch_train.py): "warmup N", "run MODE N", "quit".
final class TorchServer: PythonChild {
    var modes: [String] = []
    var loadSeconds: [String: Double] = [:]
    var peakRSS: [String: Int] = [:]

    init(batch: Int, threads: Int, loss: String, classes: Int) throws {
        try super.init(what: "PyTorch", venvVariable: "KILN_TORCH_VENV", defaultVenv: ".cache/kiln/venv-torch",
                       missing: "--compare-torch needs PyTorch in the venv at $VENV (run scripts/setup-torch.sh or set KILN_TORCH_VENV)",
                       script: "torch_train.py",
                       arguments: ["--batch", String(batch), "--threads", String(threads), "--loss", loss, "--classes", String(classes)])
        let ready = try readJSON()
        modes = ready["modes"] as? [String] ?? []
        loadSeconds = ready["load_seconds"] as? [String: Double] ?? [:]
    }

    func warmup(_ n: Int) throws {
        send("warmup \(n)")
        loadSeconds = try readJSON()["load_seconds"] as? [String: Double] ?? loadSeconds
    }

    func run(_ mode: String, _ n: Int) throws -> [Double] {
        send("run \(mode) \(n)")
        let reply = try readJSON()
        if let rss = reply["peak_rss_bytes"] as? Int { peakRSS[mode] = rss }
        return reply["seconds"] as? [Double] ?? []
    }
}
