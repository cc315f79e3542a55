import Runtime
import Foundation
import Graph
import Testing
import Train

@Suite("Dataset readers: MNIST IDX (plain and gzipped) and CIFAR binary files")
struct DatasetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func scratch(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-datasets-\(getpid())-\(name)")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// An IDX file of unsigned bytes, written by hand: magic 0x0000 08 rank, sizes big-endian.
    func idx(_ dims: [Int], _ data: [UInt8]) -> Data {
        var bytes: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { bytes += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return Data(bytes + data)
    }

    func gzip(_ path: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-kf", path]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    @Test("the 5,000-image MNIST sample in data/: 28×28 images, 500 per class (its README)")
    func mnistSample() throws {
        let path = Self.root.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").standardized.path
        try #require(FileManager.default.fileExists(atPath: path), "the MNIST sample is missing at \(path)")
        let d = try MNIST.load(images: path)
        #expect(d.imageShape == [1, 28, 28])
        #expect(d.count == 5000)
        #expect(d.pixels.count == 5000 * 784)
        #expect(d.classCounts == Array(repeating: 500, count: 10))
        #expect(d.pixels.contains(255) && d.pixels.contains(0))
    }

    @Test("IDX files read the same plain and gzipped; labels are found by the MNIST naming")
    func idxRoundTrip() throws {
        let dir = try scratch("idx")
        let pixels = (0..<(3 * 4 * 5)).map { UInt8($0 * 7 % 256) }
        let images = dir.appendingPathComponent("toy-images-idx3-ubyte").path
        let labels = dir.appendingPathComponent("toy-labels-idx1-ubyte").path
        try idx([3, 4, 5], pixels).write(to: URL(fileURLWithPath: images))
        try idx([3], [2, 0, 1]).write(to: URL(fileURLWithPath: labels))
        let plain = try MNIST.load(images: images)
        #expect(plain.imageShape == [1, 4, 5])
        #expect(plain.pixels == pixels)
        #expect(plain.labels == [2, 0, 1])
        #expect(plain.classes == 3)
        try gzip(images)
        try gzip(labels)
        let zipped = try MNIST.load(images: images + ".gz")
        #expect(zipped == plain)
        #expect(plain.subset([2, 0]).labels == [1, 2])
        #expect(plain.subset([2, 0]).pixels == Array(pixels[40..<60] + pixels[0..<20]))
    }

    @Test("malformed IDX files are clear errors")
    func idxErrors() throws {
        let dir = try scratch("idx-bad")
        let cases: [(String, Data, String)] = [
            ("magic-images-idx3-ubyte", Data([1, 2, 3, 4, 5]), "not an IDX file (bad magic)"),
            ("type-images-idx3-ubyte", Data([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]), "is not unsigned bytes"),
            ("short-images-idx3-ubyte", idx([2, 2, 2], [1, 2, 3]), "dimensions [2, 2, 2] need 8 bytes, the file holds 3"),
            ("header-images-idx3-ubyte", Data([0, 0, 8, 3, 0, 0]), "truncated IDX header"),
        ]
        for (name, data, message) in cases {
            let path = dir.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: path))
            #expect { try MNIST.load(images: path) } throws: { "\($0)".contains(message) }
        }
        let corrupt = dir.appendingPathComponent("corrupt-images-idx3-ubyte.gz").path
        try Data([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).write(to: URL(fileURLWithPath: corrupt))
        #expect { try MNIST.load(images: corrupt) } throws: { "\($0)".contains("gzip") }
        #expect { try MNIST.load(images: dir.appendingPathComponent("nothing-images-idx3-ubyte").path) } throws: { "\($0)".contains("no such file") }
        #expect { try MNIST.load(images: dir.path) } throws: { "\($0)".contains("…-images-idx3-ubyte") }
    }

    @Test("CIFAR-10 and CIFAR-100 binary records, files and folders")
    func cifar() throws {
        let dir = try scratch("cifar")
        func record(_ labels: [UInt8], fill: UInt8) -> [UInt8] { labels + (0..<3072).map { UInt8((Int($0) + Int(fill)) % 256) } }
        for b in 1...5 {
            let bytes = record([UInt8(b)], fill: UInt8(b)) + record([9], fill: 100)
            try Data(bytes).write(to: dir.appendingPathComponent("data_batch_\(b).bin"))
        }
        let c10 = try CIFAR.load(path: dir.path)
        #expect(c10.count == 10)
        #expect(c10.labels == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9])
        #expect(c10.imageShape == [3, 32, 32])
        #expect(Array(c10.pixels[0..<3]) == [1, 2, 3])
        #expect(c10.pixels[3072] == 100)
        let c100path = dir.appendingPathComponent("train.bin").path
        try Data(record([3, 77], fill: 0) + record([19, 5], fill: 1)).write(to: URL(fileURLWithPath: c100path))
        let c100 = try CIFAR.load(path: c100path)
        #expect(c100.labels == [77, 5])
        #expect(c100.classes == 100)
        let bad = dir.appendingPathComponent("bad.bin").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        #expect { try CIFAR.load(path: bad) } throws: { "\($0)".contains("not a whole number of 3073-byte CIFAR records") }
        #expect { try CIFAR.load(path: try scratch("empty").path) } throws: { "\($0)".contains("no CIFAR binary files here") }
    }

    @Test("the demo's long-tailed MNIST counts (ratio 100 from 400 per class) match the sample's README")
    func mnistLongTail() {
        #expect(LongTail.counts(classes: 10, nMax: 400, profile: .exp, ratio: 100) == [400, 239, 143, 86, 51, 30, 18, 11, 6, 4])
    }
}

@Suite("Long-tailed subsets and the demo's split")
struct SubsetTests {
    @Test("the MNIST sample splits into a 400-per-class pool and a 100-per-class test set, in file order")
    func split() throws {
        let path = DatasetTests.root.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").standardized.path
        try #require(FileManager.default.fileExists(atPath: path), "the MNIST sample is missing at \(path)")
        let d = try MNIST.load(images: path)
        let (pool, test) = d.splitPerClass(first: 400)
        #expect(pool.classCounts == Array(repeating: 400, count: 10))
        #expect(test.classCounts == Array(repeating: 100, count: 10))
        // The pool's first image of class 3 is the file's first image of class 3.
        let firstInFile = d.labels.firstIndex(of: 3)!, firstInPool = pool.labels.firstIndex(of: 3)!
        #expect(Array(pool.pixels[(firstInPool * 784)..<((firstInPool + 1) * 784)]) == Array(d.pixels[(firstInFile * 784)..<((firstInFile + 1) * 784)]))

        let counts = LongTail.counts(classes: 10, nMax: 400, profile: .exp, ratio: 100)
        let indices = try LongTail.subsetIndices(labels: pool.labels, counts: counts, seed: 7)
        let lt = pool.subset(indices)
        #expect(lt.classCounts == counts)
        #expect(lt.count == 988)  // 400 + 239 + 143 + 86 + 51 + 30 + 18 + 11 + 6 + 4
        #expect(try LongTail.subsetIndices(labels: pool.labels, counts: counts, seed: 7) == indices)
        #expect(try LongTail.subsetIndices(labels: pool.labels, counts: counts, seed: 8) != indices)
        #expect(indices == indices.sorted() && Set(indices).count == indices.count)
        #expect { try LongTail.subsetIndices(labels: pool.labels, counts: [401] + counts.dropFirst(), seed: 7) } throws: {
            "\($0)".contains("class 0 has 400 images, the long-tailed profile asks for 401")
        }
    }
}

@Suite("Batches: normalisation and augmentation")
struct BatchTests {
    @Test("normalisation statistics of a hand-made set")
    func fit() {
        let d = ImageDataset(imageShape: [1, 1, 2], pixels: [0, 255, 255, 255], labels: [0, 1], classes: 2)
        let n = Normalization.fit(d)
        // Values 0, 1, 1, 1: mean 0.75, variance (0.5625 + 3 · 0.0625) / 4 = 0.1875.
        #expect(abs(n.mean[0] - 0.75) < 1e-6)
        #expect(abs(n.std[0] - 0.4330127) < 1e-6)
    }

    /// The 3×3 window at (1 + dy, 1 + dx) of the image zero-padded to 5×5, built explicitly.
    func shifted(_ img: [Float], dy: Int, dx: Int, mirror: Bool) -> [Float] {
        var padded = [[Float]](repeating: [Float](repeating: 0, count: 5), count: 5)
        for y in 0..<3 { for x in 0..<3 { padded[y + 1][x + 1] = img[y * 3 + x] } }
        var crop: [Float] = []
        for y in 0..<3 { for x in 0..<3 { crop.append(padded[1 + dy + y][1 + dx + x]) } }
        return mirror ? (0..<9).map { crop[($0 / 3) * 3 + 2 - $0 % 3] } : crop
    }

    @Test("random crops with zero padding and horizontal flips follow the generator's draws")
    func augment() {
        let pixels = (1...9).map(UInt8.init)
        let d = ImageDataset(imageShape: [1, 3, 3], pixels: pixels, labels: [4], classes: 5)
        let identity = Normalization(mean: [0], std: [Float(1) / 255])  // out = pixel value
        var seen = Set<String>()
        for seed in 0..<40 {
            var rng = KilnRandom(seed: UInt64(seed)), draws = KilnRandom(seed: UInt64(seed))
            var out = [Float](repeating: -1, count: 9)
            let labels = out.withUnsafeMutableBufferPointer {
                d.batch([0], augmentation: Augmentation(cropPadding: 1, flip: true), normalization: identity, rng: &rng, into: $0.baseAddress!)
            }
            #expect(labels == [4])
            let dy = Int(draws.next() % 3) - 1, dx = Int(draws.next() % 3) - 1, mirror = draws.next() & 1 == 1
            let want = shifted(pixels.map(Float.init), dy: dy, dx: dx, mirror: mirror)
            for (a, b) in zip(out, want) { #expect(abs(a - b) < 1e-4, "seed \(seed): \(out) vs \(want)") }
            seen.insert("\(dy),\(dx),\(mirror)")
        }
        #expect(seen.count >= 12)  // most of the 18 crop/flip combinations occur
        var rng = KilnRandom(seed: 1)
        var plain = [Float](repeating: 0, count: 9)
        _ = plain.withUnsafeMutableBufferPointer { d.batch([0], augmentation: .none, normalization: identity, rng: &rng, into: $0.baseAddress!) }
        #expect(plain.map { Int($0.rounded()) } == Array(1...9))
    }
}

@Suite("Epoch orders")
struct EpochOrderTests {
    @Test("a shuffle visits every image once; the same seed gives the same order")
    func shuffle() {
        var a = KilnRandom(seed: 3), b = KilnRandom(seed: 3), c = KilnRandom(seed: 4)
        let order = EpochOrder.shuffled(count: 1000, rng: &a)
        #expect(order.sorted() == Array(0..<1000))
        #expect(order != Array(0..<1000))
        #expect(EpochOrder.shuffled(count: 1000, rng: &b) == order)
        #expect(EpochOrder.shuffled(count: 1000, rng: &c) != order)
    }

    @Test("class-balanced resampling draws every class about equally often, with replacement")
    func balanced() {
        // 10 classes with 400, 239, …, 4 images (the demo's LT-100 counts).
        let counts = [400, 239, 143, 86, 51, 30, 18, 11, 6, 4]
        let labels = counts.enumerated().flatMap { c, n in Array(repeating: c, count: n) }
        var rng = KilnRandom(seed: 9)
        var drawn = [Int](repeating: 0, count: 10)
        var total = 0
        for _ in 0..<50 {
            let order = EpochOrder.classBalanced(labels: labels, classes: 10, rng: &rng)
            #expect(order.count == labels.count)
            for i in order { drawn[labels[i]] += 1 }
            total += order.count
        }
        // 49,400 draws, p = 0.1 per class: σ ≈ 67, so ±5 % (±247) is more than 3.5σ.
        for d in drawn { #expect(abs(Double(d) / Double(total) - 0.1) < 0.005, "\(drawn)") }
        // The rarest class (4 images) was drawn thousands of times: with replacement.
        #expect(drawn[9] > 4000)
    }
}
