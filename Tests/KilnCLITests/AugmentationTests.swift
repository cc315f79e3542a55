import Foundation
import Graph
import Testing
import Train

/// RandAugment's operations against Pillow's, and its place in training (reproducible, and
/// covered by bit-identical resume in TrainCLITests).
@Suite("RandAugment against Pillow")
struct AugmentationTests {
    @Test("every operation, on grey and RGB images of odd sizes, both signs: equal to Pillow's within its rounding")
    func operationsMatchPillow() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        var state: UInt32 = 77
        func pixel() -> UInt8 { state = state &* 1_664_525 &+ 1_013_904_223; return UInt8(30 + (state >> 24) % 170) }
        var cases: [[String: Any]] = []
        for shape in [[1, 20, 20], [3, 19, 23]] {
            let count = shape.reduce(1, *)
            // A smooth pattern plus noise, so equalisation, contrast and sharpening have work.
            let input: [UInt8] = (0..<count).map { k in
                let x = k % shape[2], y = (k / shape[2]) % shape[1]
                return UInt8(min(255, Int(pixel()) / 3 + (x * 7 + y * 5) % 120))
            }
            for op in RandAugment.Op.allCases where op != .identity {
                for (level, sign) in [(0.7, 1.0), (0.9, -1.0)] {
                    var image = input, scratch = [UInt8](repeating: 0, count: count)
                    image.withUnsafeMutableBufferPointer { im in
                        scratch.withUnsafeMutableBufferPointer { sc in
                            RandAugment.apply(op, level: level, sign: sign, im.baseAddress!, channels: shape[0], height: shape[1], width: shape[2], scratch: sc.baseAddress!)
                        }
                    }
                    cases.append(["op": "\(op)", "level": level, "sign": sign, "shape": shape, "input": input.map(Int.init), "output": image.map(Int.init)])
                }
            }
        }
        let dir = try scratch("randaugment")
        let path = dir.appendingPathComponent("cases.json").path
        try JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: path))
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/randaugment_check.py").path, path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == cases.count)
    }

    @Test("the same seed gives the same augmented batch; the draws per image are as declared")
    func reproducible() throws {
        let set = ImageDataset(imageShape: [1, 8, 8], pixels: (0..<256).map { UInt8($0) }, labels: [0, 1, 0, 1], classes: 2)
        let aug = Augmentation(cropPadding: 1, flip: true, randAugment: RandAugment(ops: 2, magnitude: 9))
        let norm = Normalization(mean: [0.5], std: [0.25])
        func batch(_ seed: UInt64) -> ([Float], KilnRandom) {
            var rng = KilnRandom(seed: seed)
            var out = [Float](repeating: 0, count: 4 * 64)
            _ = out.withUnsafeMutableBufferPointer { set.batch([0, 1, 2, 3], augmentation: aug, normalization: norm, rng: &rng, into: $0.baseAddress!) }
            return (out, rng)
        }
        let (a, ra) = batch(9), (b, _) = batch(9), (c, _) = batch(10)
        #expect(a == b)
        #expect(a != c)
        var skipped = KilnRandom(seed: 9)
        for _ in 0..<(4 * aug.drawsPerImage) { _ = skipped.next() }
        #expect(skipped == ra, "a rank skipping drawsPerImage draws per image must land where the batch left the generator")
    }
}

@Suite("Mixup and CutMix")
struct MixingTests {
    /// Image i filled with the value i, label i: the mixed pixels show which images were paired.
    func batch(_ count: Int, _ shape: [Int]) -> [Float] {
        (0..<count).flatMap { i in [Float](repeating: Float(i), count: shape.reduce(1, *)) }
    }

    @Test("mixup blends each image with its pair's by λ; CutMix pastes a box of area 1 − λ")
    func mixes() throws {
        let shape = [2, 9, 11], count = 6, labels = Array(0..<6)
        var rng = KilnRandom(seed: 3)
        for (mixing, name) in [(Mixing(mixupAlpha: 0.4), "mixup"), (Mixing(cutmixAlpha: 1), "cutmix")] {
            for _ in 0..<20 {
                var images = batch(count, shape)
                let (second, lambda) = images.withUnsafeMutableBufferPointer { mixing.apply($0.baseAddress!, count: count, imageShape: shape, labels: labels, rng: &rng) }
                #expect(Set(second) == Set(labels), "\(name): the second labels are a permutation")
                #expect(lambda >= 0 && lambda <= 1)
                let size = shape.reduce(1, *)
                for i in 0..<count {
                    let pixels = images[(i * size)..<((i + 1) * size)]
                    if name == "mixup" {
                        let want = lambda * Float(i) + (1 - lambda) * Float(second[i])
                        #expect(pixels.allSatisfy { abs($0 - want) < 1e-5 }, "mixup image \(i)")
                    } else {
                        let pasted = pixels.filter { $0 == Float(second[i]) && second[i] != i }.count
                        let own = pixels.filter { $0 == Float(i) }.count
                        #expect(own + pasted == size || second[i] == i, "CutMix image \(i): only its own and its pair's pixels")
                        if second[i] != i { #expect(abs(Double(pasted) / Double(size) - Double(1 - lambda)) < 1e-6, "CutMix λ is the box's share") }
                    }
                }
            }
        }
    }

    @Test("λ ~ Beta(α, α): mean ½ and variance 1/(4(2α + 1)) over many draws")
    func betaMoments() {
        var rng = KilnRandom(seed: 11)
        for alpha in [0.2, 1.0, 2.0] {
            let draws = (0..<40_000).map { _ in Mixing.betaForTests(alpha, &rng) }
            let mean = draws.reduce(0, +) / Double(draws.count)
            let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)
            let expected = 1 / (4 * (2 * alpha + 1))
            #expect(abs(mean - 0.5) < 0.01, "α \(alpha): mean \(mean)")
            #expect(abs(variance - expected) < 0.05 * expected, "α \(alpha): variance \(variance), expected \(expected)")
        }
    }
}
