import Foundation
import Testing
import Train

/// Expected values are the lists printed in ../shared/LDAM-DRW.md (from the paper and its
/// reference implementation), not Kiln's output.
@Suite("Long-tailed subsets, class-balanced weights and LDAM margins")
struct LongTailTests {
    @Test("CIFAR-10 exp ratio 100")
    func cifar10Exp100() {
        let c = LongTail.counts(classes: 10, nMax: 5000, profile: .exp, ratio: 100)
        #expect(c == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
        #expect(c.reduce(0, +) == 12_406)
    }

    @Test("subset sizes: CIFAR-10 exp 10, step 100; CIFAR-100 exp 100")
    func sizes() {
        #expect(LongTail.counts(classes: 10, nMax: 5000, profile: .exp, ratio: 10).reduce(0, +) == 20_431)
        #expect(LongTail.counts(classes: 10, nMax: 5000, profile: .step, ratio: 100).reduce(0, +) == 25_250)
        #expect(LongTail.counts(classes: 100, nMax: 500, profile: .exp, ratio: 100).reduce(0, +) == 10_847)
    }

    @Test("the MNIST demo split: 400 per class, ratio 100")
    func mnistDemo() {
        // ../shared/data/mnist5k/README.md
        #expect(LongTail.counts(classes: 10, nMax: 400, profile: .exp, ratio: 100) == [400, 239, 143, 86, 51, 30, 18, 11, 6, 4])
    }

    @Test("LDAM margins for CIFAR-10 LT-100")
    func margins() {
        let m = LongTail.ldamMargins(counts: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], maxMargin: 0.5)
        let expected = [0.1581, 0.1797, 0.2042, 0.2321, 0.2638, 0.2998, 0.3407, 0.3872, 0.4405, 0.5]
        for (a, b) in zip(m, expected) { #expect(abs(a - b) < 5e-5) }
    }

    @Test("DRW class-balanced weights for CIFAR-10 LT-100 (β = 0.9999), summing to 10")
    func weights() {
        let w = LongTail.classBalancedWeights(counts: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], beta: 0.9999)
        let expected = [0.0506, 0.0769, 0.1211, 0.195, 0.3188, 0.5246, 0.8683, 1.4426, 2.4092, 3.9927]
        for (a, b) in zip(w, expected) { #expect(abs(a - b) < 5e-5) }
        #expect(abs(w.reduce(0, +) - 10) < 1e-9)
    }
}

/// numpy's own output, computed by the venv's numpy in the test (an independent implementation).
@Suite("numpy's legacy shuffle, as the LDAM-DRW reference code picks its subsets")
struct NumpyShuffleTests {
    static let python = (ProcessInfo.processInfo.environment["KILN_VENV"] ?? NSHomeDirectory() + "/.cache/kiln/venv") + "/bin/python"

    func numpy(_ script: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.python)
        p.arguments = ["-c", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "numpy is missing from the venv at \(Self.python)")
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("np.random.seed(s); np.random.randint / shuffle sequences equal Kiln's", arguments: [0 as UInt32, 1, 12345])
    func shuffles(_ seed: UInt32) throws {
        let expected = try numpy("""
            import numpy as np
            np.random.seed(\(seed))
            out = []
            for n in (400, 239, 5, 1, 70000):
                a = np.arange(n); np.random.shuffle(a); out.append(a[:12].tolist() + a[-3:].tolist())
            print(out)
            """)
        var rng = NumpyLegacyRandom(seed: seed)
        var got: [[Int]] = []
        for n in [400, 239, 5, 1, 70000] {
            var a = Array(0..<n)
            rng.shuffle(&a)
            got.append(Array(a.prefix(12)) + Array(a.suffix(3)))
        }
        #expect("\(got)" == expected)
    }

    @Test("the CIFAR-10-LT subset of the reference code: per class np.where, shuffle, first n_i")
    func referenceSubset() throws {
        // Labels cycling 0…9 over 5,000 images (500 per class), as in a synthetic CIFAR file.
        let labels = (0..<5000).map { $0 % 10 }
        let counts = LongTail.counts(classes: 10, nMax: 500, profile: .exp, ratio: 100)
        let expected = try numpy("""
            import numpy as np
            targets = np.arange(5000) % 10
            counts = \(counts)
            np.random.seed(0)
            keep = []
            for c, n in enumerate(counts):
                idx = np.where(targets == c)[0]
                np.random.shuffle(idx)
                keep += idx[:n].tolist()
            print(sorted(keep))
            """)
        #expect("\(try LongTail.subsetIndices(labels: labels, counts: counts, seed: 0))" == expected)
    }
}
