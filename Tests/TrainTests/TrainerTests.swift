import Foundation
import Graph
import Testing
import Train

/// The trainer's data set-up, schedule, metrics and checkpoint format. Expected values come
/// from ../shared/LDAM-DRW.md (counts, schedule) or are worked out by hand in the test.
@Suite("The trainer: long-tailed subsets of CIFAR files, schedule, metrics, checkpoints", .serialized)
struct TrainerTests {
    func scratch(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-trainer-\(getpid())-\(name)")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    /// CIFAR binary records with labels cycling through the classes (so every class has the
    /// same count) and pixels all equal to the record's label.
    func writeCIFAR(_ path: String, records: Int, classes: Int, first: Int = 0) throws {
        let labelBytes = classes == 10 ? 1 : 2, size = labelBytes + 3072
        var bytes = [UInt8](repeating: 0, count: records * size)
        for r in 0..<records {
            let label = UInt8((first + r) % classes)
            bytes[r * size + labelBytes - 1] = label
            if labelBytes == 2 { bytes[r * size] = label / 5 }  // a coarse label, ignored
            for k in 0..<3072 { bytes[r * size + labelBytes + k] = label }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test("long-tailed subsets read from CIFAR-10 and CIFAR-100 files have the paper's counts")
    func cifarCounts() throws {
        let dir = try scratch("cifar")
        for b in 1...5 { try writeCIFAR("\(dir)/data_batch_\(b).bin", records: 10_000, classes: 10, first: b) }
        var c = TrainConfig(model: "", data: dir)
        c.ltProfile = .exp
        c.ltRatio = 100
        let exp100 = try RunData.load(c)
        #expect(exp100.train.classCounts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
        #expect(exp100.train.count == 12_406)
        #expect(exp100.classNames == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
        // Every kept image is one of its class (pixels equal the label in these files).
        for i in stride(from: 0, to: exp100.train.count, by: 97) {
            #expect(Int(exp100.train.pixels[i * 3072 + 1234]) == exp100.train.labels[i])
        }
        c.ltRatio = 10
        #expect(try RunData.load(c).train.count == 20_431)
        c.ltProfile = .step
        c.ltRatio = 100
        let step = try RunData.load(c)
        #expect(step.train.count == 25_250)
        #expect(step.train.classCounts == [5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50])

        let dir100 = try scratch("cifar100")
        try writeCIFAR("\(dir100)/train.bin", records: 50_000, classes: 100)
        var c100 = TrainConfig(model: "", data: dir100)
        c100.ltProfile = .exp
        c100.ltRatio = 100
        let lt = try RunData.load(c100)
        #expect(lt.train.count == 10_847)
        #expect(lt.train.classCounts.first == 500 && lt.train.classCounts.last == 5)
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.removeItem(atPath: dir100)
    }

    @Test("the same long-tailed split for every training seed, another for another --lt-seed")
    func splitSeed() throws {
        let dir = try scratch("seed")
        try writeCIFAR("\(dir)/test_batch.bin", records: 2000, classes: 10)
        var c = TrainConfig(model: "", data: "\(dir)/test_batch.bin")
        c.ltProfile = .exp
        c.ltRatio = 10
        c.seed = 1
        let a = try RunData.load(c)
        c.seed = 2
        #expect(try RunData.load(c).train.labels == a.train.labels)
        #expect(a.train.classCounts == LongTail.counts(classes: 10, nMax: 200, profile: .exp, ratio: 10))
    }

    @Test("LR schedule: warm-up, ×0.01 after epoch 160 and ×1e-4 after 180 of 200; DRW weights from epoch 160")
    func schedule() {
        var c = TrainConfig(model: "", data: "")
        c.epochs = 200
        c.rule = .drw
        // e = epoch + 1: e ≤ 5 → 0.1·e/5; e > 160 → 0.001; e > 180 → 1e-5 (../shared/LDAM-DRW.md)
        let expected: [(Int, Double)] = [(0, 0.02), (1, 0.04), (4, 0.1), (5, 0.1), (159, 0.1), (160, 0.001), (179, 0.001), (180, 0.00001), (199, 0.00001)]
        for (epoch, lr) in expected { #expect(abs(c.learningRate(epoch: epoch) - lr) < 1e-12, "epoch \(epoch)") }
        let counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
        #expect(c.classWeights(epoch: 159, counts: counts) == [Float](repeating: 1, count: 10))
        let w = c.classWeights(epoch: 160, counts: counts)
        for (a, b) in zip(w, [0.0506, 0.0769, 0.1211, 0.195, 0.3188, 0.5246, 0.8683, 1.4426, 2.4092, 3.9927]) { #expect(abs(Double(a) - b) < 1e-4) }
        c.epochs = 100
        #expect(c.drwStart == 80 && c.decays == [80, 90])
        c.rule = .reweight
        #expect(c.classWeights(epoch: 0, counts: counts) == w)
        c.rule = .resample
        #expect(c.classWeights(epoch: 99, counts: counts) == [Float](repeating: 1, count: 10))
    }

    @Test("per-class and many/medium/few accuracy on a hand-worked case")
    func evaluation() {
        // Training counts: class 0 many (150), 1 medium (20), 2 few (19), 3 medium (100).
        let counts = [150, 20, 19, 100]
        let labels = [0, 0, 1, 1, 1, 2, 3, 3]
        let predictions = [0, 1, 1, 1, 0, 2, 0, 3]
        let e = Evaluation(predictions: predictions, labels: labels, trainingCounts: counts)
        #expect(e.top1 == 5.0 / 8)
        #expect(e.perClass == [0.5, 2.0 / 3, 1, 0.5])
        #expect(abs(e.meanClass - (0.5 + 2.0 / 3 + 1 + 0.5) / 4) < 1e-12)
        #expect(e.many == 0.5)
        #expect(abs(e.medium! - (2.0 / 3 + 0.5) / 2) < 1e-12)
        #expect(e.few == 1)
    }

    @Test("checkpoints round-trip, and a damaged or foreign file is a clear error")
    func checkpointFormat() throws {
        var config = TrainConfig(model: "m.kiln", data: "d")
        config.ltRatio = 100
        let header = Checkpoint.Header(config: config, epoch: 3, rng: Checkpoint.rngWords((1, 2, UInt64.max, 0xdead_beef)),
                                       classCounts: [5, 1], classNames: ["a", "b"], mean: [0.5], std: [0.25], model: "graph g {}",
                                       best: nil, tensors: [])
        let tensors = ["w": TensorData(floats: [1, -2.5, .greatestFiniteMagnitude], shape: [3]), "v": TensorData(floats: [0], shape: [1, 1])]
        let bytes = try Checkpoint(header: header, tensors: tensors).encoded()
        let back = try Checkpoint.decode(bytes, path: "x")
        #expect(back.tensors == tensors)
        #expect(back.header.config == config)
        #expect(back.rng! == (1, 2, UInt64.max, 0xdead_beef))
        var damaged = bytes
        damaged[damaged.count / 2] ^= 1
        #expect(throws: DatasetError.self) { try Checkpoint.decode(damaged, path: "x") }
        #expect(throws: DatasetError.self) { try Checkpoint.decode(Array(bytes.prefix(bytes.count - 3)), path: "x") }
        #expect(throws: DatasetError.self) { try Checkpoint.decode(Array("not a checkpoint at all, no".utf8), path: "x") }
    }
}
