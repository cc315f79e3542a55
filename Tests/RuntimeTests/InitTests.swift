import Graph
import Runtime
import Testing

@Suite("Seeded parameter initialisation")
struct InitTests {
    static let text = """
        graph t {
          input x: f32[N, 64, 3, 3]
          param conv.weight: f32[128, 64, 3, 3] = kaiming_normal(fan_in)
          param conv2.weight: f32[64, 128, 1, 1] = kaiming_normal(fan_out)
          param head.weight: f32[64, 10] = unit_columns
          param u: f32[10000] = uniform(-0.25, 0.75)
          param k: f32[100, 400] = kaiming_uniform
          param b: f32[5] = constant(0.5)
          y: f32[N, 128, 1, 1] = Conv(x, conv.weight)
          output y
        }
        """

    func stats(_ v: [Float]) -> (mean: Double, std: Double) {
        let m = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
        let s = (v.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(v.count)).squareRoot()
        return (m, s)
    }

    @Test("Kaiming normal has std √(2/fan): fan_in for conv.weight, fan_out for conv2.weight")
    func kaiming() throws {
        let g = try TextFormat.parse(Self.text).materialized(seed: 7)
        let w = try #require(g.parameter(named: "conv.weight")?.initializer.tensor?.floats)
        let (m, s) = stats(w)
        // 73,728 samples: the std of the sample mean is ~σ/271; allow 5 of them.
        let sigma = (2.0 / (64 * 9)).squareRoot()
        #expect(abs(m) < 5 * sigma / 271)
        #expect(abs(s - sigma) / sigma < 0.02)
        let w2 = try #require(g.parameter(named: "conv2.weight")?.initializer.tensor?.floats)
        #expect(abs(stats(w2).std - (2.0 / 64).squareRoot()) / (2.0 / 64).squareRoot() < 0.03)
    }

    @Test("uniform stays in bounds and has the uniform mean and std")
    func uniform() throws {
        let g = try TextFormat.parse(Self.text).materialized(seed: 1)
        let u = try #require(g.parameter(named: "u")?.initializer.tensor?.floats)
        #expect(u.allSatisfy { $0 >= -0.25 && $0 < 0.75 })
        let (m, s) = stats(u)
        #expect(abs(m - 0.25) < 0.01)
        #expect(abs(s - 1 / 12.0.squareRoot()) < 0.01)  // (b−a)/√12
        let k = try #require(g.parameter(named: "k")?.initializer.tensor?.floats)
        #expect(k.allSatisfy { abs($0) <= 1 / 20 })  // 1/√400
        #expect(g.parameter(named: "b")?.initializer.tensor?.floats == [0.5, 0.5, 0.5, 0.5, 0.5])
    }

    @Test("unit_columns gives every class column unit L2 norm")
    func unitColumns() throws {
        let g = try TextFormat.parse(Self.text).materialized(seed: 3)
        let w = try #require(g.parameter(named: "head.weight")?.initializer.tensor?.floats)
        for c in 0..<10 {
            let norm = (0..<64).reduce(0.0) { $0 + Double(w[$1 * 10 + c] * w[$1 * 10 + c]) }.squareRoot()
            #expect(abs(norm - 1) < 1e-6)
        }
    }

    @Test("the same seed gives the same values; another seed does not; streams are per name")
    func determinism() throws {
        let g = try TextFormat.parse(Self.text)
        let a = try g.materialized(seed: 42), b = try g.materialized(seed: 42), c = try g.materialized(seed: 43)
        #expect(a == b)
        #expect(a.parameter(named: "u") != c.parameter(named: "u"))
        // Dropping another parameter does not change this one's values.
        var h = g
        h.parameters.removeAll { $0.name == "k" }
        #expect(try h.materialized(seed: 42).parameter(named: "u") == a.parameter(named: "u"))
    }

    @Test("the generator's first outputs match the xoshiro256** definition")
    func generatorReference() {
        // State (1, 2, 3, 4) worked through the published recurrence by hand:
        // out1 = rotl(2·5, 7)·9 = 1280·9 = 11520; t = 2 << 17 = 262144; s2 = 3^1 = 2;
        // s3 = 4^2 = 6; s1 = 2^2 = 0; s0 = 1^6 = 7; s2 = 2^t = 262146; s3 = rotl(6, 45) = 6·2^45.
        // out2 = rotl(0·5, 7)·9 = 0.
        var r = KilnRandom(state: (1, 2, 3, 4))
        #expect(r.next() == 11520)
        #expect(r.state == (7, 0, 262_146, 6 << 45))
        #expect(r.next() == 0)
    }

    @Test("a summarised parameter cannot be materialised")
    func summaries() throws {
        let g = Graph(name: "s", parameters: [Parameter(name: "w", shape: [2], initializer: .summary(TensorSummary(count: 2, min: 0, max: 1, mean: 0.5)))])
        #expect(throws: InitError.noValues(parameter: "w")) { try g.materialized(seed: 0) }
    }
}
