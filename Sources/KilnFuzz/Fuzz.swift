import CFuzzDriver
import Foundation
import Graph
import ONNX
import Imaging
import Train

/// Fuzz targets: each takes arbitrary bytes through one loader, as a hostile file would reach
/// it. Every error must be a thrown value; a crash, a hang or an allocation past libFuzzer's
/// limit is a bug.
///
/// Built two ways. `scripts/fuzz.sh` builds it with `-sanitize=fuzzer,address` and
/// `-D KILN_LIBFUZZER`: `main` hands libFuzzer's driver the target `KILN_FUZZ_TARGET` names.
/// The ordinary build gives a replay tool, `kiln-fuzz TARGET FILE|DIR…`, that runs saved
/// inputs (the committed corpora) through a target and prints one line per input.
enum FuzzTarget: String, CaseIterable {
    case onnx, text, npy, pb, png, jpeg, checkpoint, metadata

    /// Images are decoded below this many pixels: the CLI's limit is larger, but a fuzzer
    /// that decodes 100-megapixel images runs a few inputs a second.
    static let pixelLimit = 1 << 22

    func run(_ bytes: [UInt8]) {
        switch self {
        case .onnx:
            // baseDirectory nil: external data is refused, so the fuzzer cannot read files.
            guard let g = try? ONNXImport.graph(from: bytes, path: "fuzz.onnx", baseDirectory: nil) else { return }
            exercise(g)
        case .text:
            guard let g = try? TextFormat.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.kiln") else { return }
            exercise(g)
            // What the printer writes parses back.
            let printed = TextFormat.print(g)
            guard (try? TextFormat.parse(printed, file: "printed.kiln")) != nil else {
                fatalError("the printed form of a parsed graph does not parse:\n\(printed)")
            }
        case .npy:
            _ = try? NPY.decode(bytes, path: "fuzz.npy")
        case .pb:
            _ = try? TensorData.readProtobuf(bytes, path: "fuzz.pb")
        case .png, .jpeg:
            guard let image = try? ImageDecoder.decode(bytes: bytes, name: self == .png ? "fuzz.png" : "fuzz.jpg",
                                                       pixelLimit: Self.pixelLimit) else { return }
            // Both resize policies over whatever size came out, into an exactly sized buffer.
            for resize in [Preprocessing.Resize.direct, .shorterSide] {
                var p = Preprocessing(channels: 3, height: 7, width: 5, mean: [0, 0, 0], std: [1, 1, 1])
                p.resize = resize
                let out = UnsafeMutablePointer<Float>.allocate(capacity: p.tensorSize)
                p.apply(image, into: out)
                out.deallocate()
            }
        case .checkpoint:
            // A checksum guards the format; append the right one so the fuzzer reaches the
            // parser behind it (a wrong checksum is already an error).
            let full = bytes + Checkpoint.checksumBytes(bytes)
            guard let c = try? Checkpoint.decode(full, path: "fuzz.kcp") else { return }
            _ = try? c.architecture()
        case .metadata:
            // NUL-separated values for the metadata keys preprocessing reads; the first three
            // bytes choose the input shape.
            let parts = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            let keys = ["kiln.input_size", "kiln.resize", "kiln.resize_size", "kiln.mean", "kiln.std"]
            var metadata: [String: String] = [:]
            for (k, v) in zip(keys, parts.dropFirst()) { metadata[k] = v }
            let head = Array(bytes.prefix(3)) + [1, 1, 1]
            let shape = [Int(head[0] % 4), Int(head[1] % 40), Int(head[2] % 40)]
            guard let (p, _) = try? Preprocessing.from(metadata: metadata, inputShape: shape) else { return }
            guard p.height <= Preprocessing.maxSide, p.width <= Preprocessing.maxSide else { fatalError("preprocessing accepted \(p.height)×\(p.width)") }
            guard p.tensorSize <= 1 << 16, (p.resizeSize ?? 0) <= 256 else { return }  // valid, but too slow to run per input
            let image = Image(width: 9, height: 4, channels: 3, pixels: [UInt8](repeating: 128, count: 9 * 4 * 3))
            let out = UnsafeMutablePointer<Float>.allocate(capacity: p.tensorSize)
            p.apply(image, into: out)
            out.deallocate()
        }
    }

    /// What every loaded graph goes through next in the CLI: statistics and printing.
    func exercise(_ g: Graph) {
        _ = g.stats(batch: 2)
        _ = TextFormat.print(g)
        _ = g.rebindingBatch()
    }
}

/// The target libFuzzer runs, named by KILN_FUZZ_TARGET.
nonisolated(unsafe) var selected = FuzzTarget.onnx

@main
struct FuzzMain {
    static func main() {
        #if KILN_LIBFUZZER
        let name = ProcessInfo.processInfo.environment["KILN_FUZZ_TARGET"] ?? ""
        guard let t = FuzzTarget(rawValue: name) else {
            writeStderr("kiln-fuzz: set KILN_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n")
            exit(64)
        }
        selected = t
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(kiln_fuzz_run_driver(&argc, &argv) { data, size in
            selected.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
        #else
        replay()
        #endif
    }

    /// Runs saved inputs through a target: `kiln-fuzz TARGET FILE|DIR…`.
    static func replay() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTarget(rawValue: name), args.count >= 2 else {
            writeStderr("usage: kiln-fuzz TARGET FILE|DIR… (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))\n")
            exit(64)
        }
        var files: [String] = []
        for path in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                writeStderr("kiln-fuzz: \(path): no such file\n"); exit(1)
            }
            if isDir.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        var slowest = 0.0
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else { continue }
            let start = Date()
            target.run([UInt8](data))
            slowest = max(slowest, Date().timeIntervalSince(start))
        }
        print("kiln-fuzz \(target.rawValue): \(files.count) inputs, slowest \(String(format: "%.3f", slowest)) s")
    }
}
