import CZlib
import Foundation

/// A labelled image set in memory: 8-bit pixels, NCHW, one label per image.
public struct ImageDataset: Sendable, Equatable {
    /// Per-image shape [C, H, W].
    public var imageShape: [Int]
    /// count × C·H·W bytes.
    public var pixels: [UInt8]
    public var labels: [Int]
    public var classes: Int

    public init(imageShape: [Int], pixels: [UInt8], labels: [Int], classes: Int) {
        self.imageShape = imageShape
        self.pixels = pixels
        self.labels = labels
        self.classes = classes
    }

    public var count: Int { labels.count }
    public var imageSize: Int { imageShape.reduce(1, *) }

    /// Images per class.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for l in labels { counts[l] += 1 }
        return counts
    }

    /// Splits every class: its first `first` images (in dataset order) and the rest — the
    /// shared MNIST sample's training pool (400) and balanced test set (100).
    public func splitPerClass(first: Int) -> (head: ImageDataset, rest: ImageDataset) {
        var seen = [Int](repeating: 0, count: classes)
        var head: [Int] = [], rest: [Int] = []
        for (i, l) in labels.enumerated() {
            if seen[l] < first { head.append(i) } else { rest.append(i) }
            seen[l] += 1
        }
        return (subset(head), subset(rest))
    }

    /// The images at `indices`, in that order.
    public func subset(_ indices: [Int]) -> ImageDataset {
        var px = [UInt8]()
        px.reserveCapacity(indices.count * imageSize)
        for i in indices { px += pixels[(i * imageSize)..<((i + 1) * imageSize)] }
        return ImageDataset(imageShape: imageShape, pixels: px, labels: indices.map { labels[$0] }, classes: classes)
    }
}

public struct DatasetError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// Reads whole files, gunzipping those that start with the gzip magic.
enum FileBytes {
    /// The largest file (after decompression) a dataset reader accepts.
    static let limit = 1 << 32

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            throw DatasetError(path: path, message: !exists ? "no such file" : isDirectory.boolValue ? "is a directory" : "cannot read")
        }
        let bytes = [UInt8](data)
        return bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b ? try gunzip(bytes, path: path) : bytes
    }

    static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header.
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError(path: path, message: "cannot start gzip decompression")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        try input.withUnsafeBufferPointer { inBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.avail_in = uInt(inBuffer.count)
            repeat {
                status = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw DatasetError(path: path, message: "corrupt gzip data (zlib error \(status))")
                }
                output += chunk[0..<(chunk.count - Int(stream.avail_out))]
                guard output.count <= limit else { throw DatasetError(path: path, message: "decompresses to more than \(limit) bytes") }
                if status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0 {
                    throw DatasetError(path: path, message: "truncated gzip data")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}

/// MNIST's IDX format (LeCun et al.): big-endian magic 0x0000 08 DD (unsigned bytes, DD
/// dimensions), then DD big-endian 32-bit sizes, then the bytes.
public enum IDX {
    /// Dimensions and data of an IDX file of unsigned bytes (gzipped or not).
    public static func read(path: String) throws -> (dims: [Int], data: [UInt8]) {
        let bytes = try FileBytes.read(path)
        func fail(_ m: String) -> DatasetError { DatasetError(path: path, message: m) }
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else { throw fail("not an IDX file (bad magic)") }
        guard bytes[2] == 0x08 else { throw fail("IDX element type 0x\(String(bytes[2], radix: 16)) is not unsigned bytes (0x08)") }
        let rank = Int(bytes[3])
        guard rank >= 1, bytes.count >= 4 + 4 * rank else { throw fail("truncated IDX header") }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let count = dims.reduce(1, *), start = 4 + 4 * rank
        guard bytes.count - start == count else {
            throw fail("dimensions \(dims) need \(count) bytes, the file holds \(bytes.count - start)")
        }
        return (dims, Array(bytes[start...]))
    }
}

public enum MNIST {
    /// The labels file that goes with an images file: `…-images-idx3-ubyte[.gz]` →
    /// `…-labels-idx1-ubyte[.gz]` (the standard MNIST naming).
    public static func labelsPath(forImages path: String) -> String? {
        guard path.contains("-images-idx3-ubyte") else { return nil }
        return path.replacingOccurrences(of: "-images-idx3-ubyte", with: "-labels-idx1-ubyte")
    }

    /// An MNIST-format image set: images [N, H, W] and their labels (found by name).
    public static func load(images path: String) throws -> ImageDataset {
        guard let labelsPath = labelsPath(forImages: path) else {
            throw DatasetError(path: path, message: "expected an MNIST images file named …-images-idx3-ubyte[.gz], to find its …-labels-idx1-ubyte[.gz]")
        }
        let (dims, pixels) = try IDX.read(path: path)
        guard dims.count == 3 else { throw DatasetError(path: path, message: "images must be [N, H, W], got \(dims)") }
        let (ldims, labels) = try IDX.read(path: labelsPath)
        guard ldims == [dims[0]] else {
            throw DatasetError(path: labelsPath, message: "holds \(ldims) labels for \(dims[0]) images")
        }
        let classes = Int(labels.max() ?? 0) + 1
        return ImageDataset(imageShape: [1, dims[1], dims[2]], pixels: pixels, labels: labels.map(Int.init), classes: classes)
    }
}

/// The CIFAR-10 / CIFAR-100 binary format (Krizhevsky 2009): records of a label byte
/// (CIFAR-100: coarse then fine label) and 3 × 32 × 32 bytes, channel planes in R, G, B order.
public enum CIFAR {
    public enum Kind: Sendable { case cifar10, cifar100 }

    /// One file, or a folder: CIFAR-10's `data_batch_1…5.bin` (train) or `test_batch.bin`,
    /// CIFAR-100's `train.bin` or `test.bin`.
    public static func load(path: String, train: Bool = true) throws -> ImageDataset {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw DatasetError(path: path, message: "no such file") }
        if !isDirectory.boolValue {
            let name = (path as NSString).lastPathComponent
            return try read(files: [path], kind: name == "train.bin" || name == "test.bin" ? .cifar100 : .cifar10)
        }
        let fm = FileManager.default
        let c10 = train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        let c100 = [train ? "train.bin" : "test.bin"]
        for (names, kind) in [(c10, Kind.cifar10), (c100, Kind.cifar100)] {
            let files = names.map { (path as NSString).appendingPathComponent($0) }
            if files.allSatisfy({ fm.fileExists(atPath: $0) }) { return try read(files: files, kind: kind) }
        }
        throw DatasetError(path: path, message: "no CIFAR binary files here (expected \(c10.joined(separator: ", ")) or \(c100[0]))")
    }

    public static func read(files: [String], kind: Kind) throws -> ImageDataset {
        let labelBytes = kind == .cifar10 ? 1 : 2, image = 3 * 32 * 32, record = labelBytes + image
        var pixels: [UInt8] = [], labels: [Int] = []
        for f in files {
            let bytes = try FileBytes.read(f)
            guard !bytes.isEmpty, bytes.count % record == 0 else {
                throw DatasetError(path: f, message: "\(bytes.count) bytes is not a whole number of \(record)-byte CIFAR records")
            }
            for r in 0..<(bytes.count / record) {
                let o = r * record
                let label = Int(bytes[o + labelBytes - 1])
                guard label < (kind == .cifar10 ? 10 : 100) else {
                    throw DatasetError(path: f, message: "record \(r) has label \(label), outside the \(kind == .cifar10 ? 10 : 100) classes")
                }
                labels.append(label)
                pixels += bytes[(o + labelBytes)..<(o + record)]
            }
        }
        return ImageDataset(imageShape: [3, 32, 32], pixels: pixels, labels: labels, classes: kind == .cifar10 ? 10 : 100)
    }
}
