import ArgumentParser
import Foundation
import Graph
import Imaging
import ONNX
import Runtime

extension Kiln {
    struct QuantizeCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "quantize",
            abstract: "Quantize a classifier to int8 from calibration images; writes a standard QDQ ONNX model.",
            discussion: """
                Runs the model over images from FOLDER (searched recursively, the model's preprocessing as `kiln infer` applies it; --images of them, spread evenly over the sorted listing so that every class folder is sampled) and records the range of every activation that feeds or leaves a Conv, Gemm, MatMul, Add, pooling, Concat, Relu or Clip. It then writes OUTPUT with QuantizeLinear → DequantizeLinear pairs on those activations (per tensor: uint8 asymmetric by default, or int8), int8 weights behind DequantizeLinear (symmetric, per output channel unless --per-tensor) and int32 biases — the QDQ layout onnxruntime's quantizer writes and runs on its int8 kernels. BatchNormalization is folded into the convolutions first; a Relu or Clip whose output is quantized from zero up is dropped (the quantization clamps the same).

                Weights are 7-bit by default ([−63, 63]): then no pair of uint8 × int8 products overflows 16 bits, and x86 int8 kernels without VNNI (vpmaddubsw: onnxruntime's on AVX2 CPUs) compute the model exactly. With --weight-bits 8 such kernels saturate on large activations and onnxruntime's results on those CPUs drift from the model's (on the demo's ResNet-8 on this project's AVX2 machine: 95 % top-1 agreement, against 100 % with 7 bits); use 8 bits where every runtime of the model has VNNI.

                Ranges: --method minmax (default) takes the extremes seen; --method percentile clips outliers at --percentile (default 99.99) of the values from each end, from a histogram (the images are run twice).

                `kiln run`, `kiln infer`, `kiln eval` and `kiln bench` take the result like any ONNX model.

                Examples:
                  kiln quantize model.onnx --calibrate train-images/ --output model-int8.onnx
                  kiln quantize model.onnx --calibrate train-images/ --images 500 --method percentile --output model-int8.onnx
                """
        )

        @Argument(help: "The model (.onnx, or .kiln with weights).")
        var model: String
        @Option(help: "A folder of calibration images (PNG, JPEG; class subfolders are fine).")
        var calibrate: String
        @Option(name: [.short, .customLong("output")], help: "The quantized model to write (.onnx).")
        var output: String
        @Option(help: "Calibration images to use (at most; spread over the folder).")
        var images: Int = 256
        @Option(help: "How activation ranges are chosen: minmax or percentile.")
        var method: String = "minmax"
        @Option(help: "With --method percentile: the percentile kept at each end.")
        var percentile: Double = 99.99
        @Option(help: "Activation type: u8 (asymmetric, the usual one) or i8.")
        var activations: String = "u8"
        @Flag(name: .customLong("per-tensor"), help: "One scale per weight instead of one per output channel.")
        var perTensor = false
        @Option(name: .customLong("weight-bits"), help: "Weight precision, 7 or 8 (see the discussion).")
        var weightBits: Int = Quantization.Options().weightBits
        @Option(help: "Images per calibration batch.")
        var batch: Int = 16
        @Option(help: "Threads (default: all cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @OptionGroup var preprocess: PreprocessOptions

        func run() throws {
            var skipped = 0
            Interrupts.shared.install { [output] sig in "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); \(output) not written" }
            try reportingErrors {
                guard images >= 1 else { throw CLIError("--images must be at least 1") }
                guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
                guard output.lowercased().hasSuffix(".onnx") else { throw CLIError("\(output): the output must be an .onnx file") }
                let m: Quantization.Method
                switch method {
                case "minmax": m = .minMax
                case "percentile":
                    guard percentile > 50 && percentile <= 100 else { throw CLIError("--percentile must be in (50, 100], got \(percentile)") }
                    m = .percentile(percentile)
                default: throw CLIError("--method must be minmax or percentile, got '\(method)'")
                }
                let type: DType
                switch activations {
                case "u8", "uint8": type = .u8
                case "i8", "int8": type = .i8
                default: throw CLIError("--activations must be u8 or i8, got '\(activations)'")
                }
                guard weightBits == 7 || weightBits == 8 else { throw CLIError("--weight-bits must be 7 or 8, got \(weightBits)") }
                let options = Quantization.Options(method: m, activations: type, perChannel: !perTensor, weightBits: weightBits)
                let start = DispatchTime.now().uptimeNanoseconds
                let original = try loadClassifier(model)
                let p = try preprocess.preprocessing(for: original)
                let result = try calibratedQuantization(original, preprocessing: p, folder: calibrate, images: images, options: options,
                                                         batch: batch, threads: threads, pixelLimit: preprocess.pixelLimit)
                skipped = result.skipped
                let (graph, quantized, used) = (result.prepared, result.graph, result.used)
                try ONNXExport.write(quantized, to: output)
                let pairs = quantized.nodes.filter { $0.op == "QuantizeLinear" }.count
                let weights = quantized.parameters.filter { $0.dtype == .i8 && $0.shape.count >= 2 }.count
                let removed = graph.nodes.filter { $0.op == "Relu" || $0.op == "Clip" }.count - quantized.nodes.filter { $0.op == "Relu" || $0.op == "Clip" }.count
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                writeStderr(String(format: "kiln: calibrated on %d images (%@), %d activations and %d weights quantized%@, written to %@ in %.1f s\n",
                                   used, m.description, pairs, weights, removed > 0 ? ", \(removed) Relu/Clip folded into the quantization" : "",
                                   output, seconds))
            }
            if skipped > 0 { throw ExitCode(2) }
        }
    }
}

/// `original` quantized to int8 (Quantization, options as given) with ranges calibrated on up to
/// `images` images of `folder` (spread evenly over its sorted listing, preprocessed by `p`):
/// the prepared float graph, the QDQ graph, the images used and the files skipped (each named
/// on stderr).
func calibratedQuantization(_ original: Graph, preprocessing p: Preprocessing, folder: String, images: Int, options: Quantization.Options,
                            batch: Int, threads: Int, pixelLimit: Int) throws -> (prepared: Graph, graph: Graph, used: Int, skipped: Int) {
    let graph = try Quantization.prepared(original)
    let listing = try FolderListing.walk(folder)
    if listing.ignored > 0 { printNote("ignored \(listing.ignored) files that are not PNG or JPEG by name") }
    let count = listing.files.count
    guard count > 0 else { throw CLIError("\(folder): no PNG or JPEG images to calibrate with") }
    // Evenly spread over the sorted listing, so every class folder is sampled.
    let chosen = (0..<min(images, count)).map { k in listing.files[k * count / min(images, count)] }
    let tensors = Quantization.activationTensors(graph)
    guard !tensors.isEmpty else { throw CLIError("the model has no Conv, Gemm or MatMul activations to quantize") }
    let calibrator = try Calibrator(graph: graph, tensors: tensors, batch: min(batch, chosen.count), threads: threads, method: options.method)
    guard calibrator.inputSize == p.tensorSize else {
        throw CLIError("the model's input takes \(calibrator.inputSize) floats per image, the preprocessing makes \(p.tensorSize)")
    }
    let passes = calibrator.needsSecondPass ? 2 : 1
    let bar = ProgressBar()
    var used = 0, skipped = 0
    for pass in 1...passes {
        if pass == 2 { calibrator.beginSecondPass() }
        var k = 0
        while k < chosen.count {
            let paths = Array(chosen[k..<min(k + calibrator.batch, chosen.count)])
            k += paths.count
            let prepared = prepareImages(paths, p, pixelLimit: pixelLimit)
            var good: [Float] = []
            for (i, e) in prepared.errors.enumerated() {
                if let e {
                    if pass == 1 { if isFirstRank { writeStderr("kiln: skipped \(e.path): \(e.reason)\n") }; skipped += 1 }
                } else {
                    good += prepared.tensors[(i * p.tensorSize)..<((i + 1) * p.tensorSize)]
                }
            }
            let n = good.count / p.tensorSize
            if n > 0 { try good.withUnsafeBufferPointer { try calibrator.observe($0, images: n) } }
            if pass == 1 { used += n }
            bar.show("calibrating: pass \(pass)/\(passes), \(k)/\(chosen.count) images", fraction: Double(k) / Double(chosen.count))
        }
    }
    bar.clear()
    guard used > 0 else { throw CLIError("\(folder): none of the \(chosen.count) chosen images could be used") }
    return (graph, try Quantization.quantize(graph, ranges: calibrator.ranges(), options: options), used, skipped)
}
