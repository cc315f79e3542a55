import Foundation
import Graph

/// A run's state after a whole epoch: what `--resume` continues from and `kiln export` reads.
///
/// File layout (little-endian): the 8 bytes `KILNCKPT`, a UInt32 format version, a UInt64
/// header length, the header (JSON: `Header`), the tensors' f32 values one after another in
/// the header's order, and an FNV-1a 64-bit hash of everything before it.
public struct Checkpoint: Sendable {
    public struct TensorEntry: Codable, Sendable, Equatable {
        public var name: String
        public var shape: [Int]
    }

    public struct Best: Codable, Sendable, Equatable {
        public var epoch: Int
        public var top1: Double
        public var meanClass: Double
    }

    public struct Header: Codable, Sendable {
        public var config: TrainConfig
        /// Epochs completed.
        public var epoch: Int
        /// The run's generator after `epoch` epochs, as four hexadecimal words.
        public var rng: [String]
        public var classCounts: [Int]
        public var classNames: [String]
        public var mean: [Float]
        public var std: [Float]
        /// The architecture in Kiln's text IR (f32 values are in the tensors).
        public var model: String
        public var best: Best?
        public var tensors: [TensorEntry]
        /// The ranks of the data-parallel job that wrote it (absent: one process).
        public var ranks: Int?

        public init(config: TrainConfig, epoch: Int, rng: [String], classCounts: [Int], classNames: [String], mean: [Float], std: [Float],
                    model: String, best: Best?, tensors: [TensorEntry]) {
            self.config = config
            self.epoch = epoch
            self.rng = rng
            self.classCounts = classCounts
            self.classNames = classNames
            self.mean = mean
            self.std = std
            self.model = model
            self.best = best
            self.tensors = tensors
        }
    }

    public static let fileName = "checkpoint.kcp"
    static let magic = Array("KILNCKPT".utf8)
    static let version: UInt32 = 1

    public var header: Header
    /// Parameters, SGD velocities and BatchNorm running statistics by name.
    public var tensors: [String: TensorData]

    public init(header: Header, tensors: [String: TensorData]) {
        self.header = header
        self.tensors = tensors
    }

    /// The architecture with its f32 values from the tensors.
    public func architecture() throws -> Graph {
        var g = try TextFormat.parse(header.model, file: Self.fileName)
        for i in g.parameters.indices where g.parameters[i].dtype == .f32 {
            guard let t = tensors[g.parameters[i].name] else {
                throw TrainError("the checkpoint holds no value for parameter '\(g.parameters[i].name)'")
            }
            g.parameters[i].initializer = .data(t)
        }
        return g
    }

    public var rng: KilnRandomState? {
        let words = header.rng.compactMap { UInt64($0, radix: 16) }
        return words.count == 4 ? (words[0], words[1], words[2], words[3]) : nil
    }

    public static func rngWords(_ s: KilnRandomState) -> [String] {
        [s.0, s.1, s.2, s.3].map { String($0, radix: 16) }
    }

    public func encoded() throws -> [UInt8] {
        var h = header
        let names = tensors.keys.sorted()
        h.tensors = names.map { TensorEntry(name: $0, shape: tensors[$0]!.shape) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = [UInt8](try encoder.encode(h))
        var out = Self.magic
        withUnsafeBytes(of: Self.version.littleEndian) { out += $0 }
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
        out += json
        for n in names {
            let t = tensors[n]!
            guard t.dtype == .f32 else { throw DatasetError(path: n, message: "checkpoints hold f32 tensors, this is \(t.dtype)") }
            out += t.bytes
        }
        withUnsafeBytes(of: fnv1a(out).littleEndian) { out += $0 }
        return out
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> Checkpoint {
        func fail(_ m: String) -> DatasetError { DatasetError(path: path, message: m) }
        guard bytes.count >= 28, Array(bytes[0..<8]) == magic else { throw fail("not a Kiln checkpoint (bad magic)") }
        let version = bytes[8..<12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        guard version == Self.version else { throw fail("checkpoint format \(version); this Kiln reads format \(Self.version)") }
        let stored = bytes[(bytes.count - 8)...].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard fnv1a(bytes[..<(bytes.count - 8)]) == stored else { throw fail("damaged checkpoint (checksum mismatch)") }
        let length64 = bytes[12..<20].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length64 <= UInt64(bytes.count - 28) else { throw fail("damaged checkpoint (header length)") }
        let length = Int(length64)
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[20..<(20 + length)])) } catch {
            throw fail("unreadable checkpoint header: \(error)")
        }
        var offset = 20 + length
        var tensors: [String: TensorData] = [:]
        for e in header.tensors {
            // Sizes come from the file: multiply without overflow, and only up to what it holds.
            var n = 4
            for d in e.shape {
                let (m, overflow) = n.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow, m <= bytes.count else { throw fail("damaged checkpoint (tensor '\(e.name)' of shape \(e.shape))") }
                n = m
            }
            guard offset + n <= bytes.count - 8 else { throw fail("damaged checkpoint (tensor '\(e.name)')") }
            tensors[e.name] = TensorData(dtype: .f32, shape: e.shape, bytes: Array(bytes[offset..<(offset + n)]))
            offset += n
        }
        guard offset == bytes.count - 8 else { throw fail("damaged checkpoint (\(bytes.count - 8 - offset) stray bytes)") }
        return Checkpoint(header: header, tensors: tensors)
    }

    /// The 8 bytes that end a checkpoint whose other bytes are `body`.
    public static func checksumBytes(_ body: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: fnv1a(body).littleEndian) { Array($0) }
    }

    public static func read(runDirectory: String) throws -> Checkpoint {
        let path = (runDirectory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError(path: runDirectory, message: FileManager.default.fileExists(atPath: path)
                ? "cannot read \(fileName)" : "no \(fileName) here: not a Kiln run folder, or no epoch finished yet")
        }
        return try decode([UInt8](data), path: path)
    }

    public func write(runDirectory: String) throws {
        try AtomicFile.write(try encoded(), to: (runDirectory as NSString).appendingPathComponent(Self.fileName))
    }
}

public typealias KilnRandomState = (UInt64, UInt64, UInt64, UInt64)

func fnv1a<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Whole-file writes that a crash cannot tear: a temporary file beside the target, fsync,
/// rename over the target, fsync of the folder.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
        func fail(_ what: String) -> DatasetError {
            DatasetError(path: path, message: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create a temporary file") }
        Interrupts.shared.track(file: tmp)
        defer { Interrupts.shared.untrack(file: tmp) }
        var written = 0
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return false }
                written += n
            }
            return true
        }
        guard ok, fsync(fd) == 0 else {
            let e = fail("cannot write")
            close(fd)
            unlink(tmp)
            throw e
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let e = fail("cannot rename the temporary file into place")
            unlink(tmp)
            throw e
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
