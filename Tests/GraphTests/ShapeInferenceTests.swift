import Graph
import Testing

/// Expected shapes here are worked out by hand from the ONNX operator definitions.
@Suite("Shape inference")
struct ShapeInferenceTests {
    func out(_ body: String, inputs: String, value: String = "y") throws -> TensorType? {
        let g = try TextFormat.parse("graph t {\n\(inputs)\n\(body)\noutput \(value)\n}")
        return g.valueTypes[value]
    }

    @Test("Conv: pads, strides, dilations, groups")
    func conv() throws {
        // 7 + 1 + 1 − 2·(3−1) − 1 = 4 → floor(4/2)+1 = 3
        #expect(try out("y = Conv(x, w) {pads=[1, 1, 1, 1], strides=[2, 2], dilations=[2, 2]}",
                        inputs: "input x: f32[N, 4, 7, 7]\nparam w: f32[6, 4, 3, 3] = zeros") == TensorType(.f32, [N, 6, 3, 3]))
        // group 2: W has C/2 = 2 input channels.
        #expect(try out("y = Conv(x, w) {group=2}", inputs: "input x: f32[1, 4, 5, 6]\nparam w: f32[6, 2, 3, 2] = zeros")
                == TensorType(.f32, [1, 6, 3, 5]))
    }

    @Test("Conv auto_pad: SAME gives ceil(D/stride), VALID drops the border")
    func convAutoPad() throws {
        let inputs = "input x: f32[1, 1, 7, 5]\nparam w: f32[1, 1, 3, 3] = zeros"
        #expect(try out("y = Conv(x, w) {auto_pad=\"SAME_UPPER\", strides=[2, 2]}", inputs: inputs) == TensorType(.f32, [1, 1, 4, 3]))
        #expect(try out("y = Conv(x, w) {auto_pad=\"SAME_LOWER\", strides=[2, 2]}", inputs: inputs) == TensorType(.f32, [1, 1, 4, 3]))
        #expect(try out("y = Conv(x, w) {auto_pad=\"VALID\", strides=[2, 2]}", inputs: inputs) == TensorType(.f32, [1, 1, 3, 2]))
    }

    @Test("SAME padding puts the odd pixel at the end (UPPER) or the start (LOWER)")
    func samePads() throws {
        // D=5, k=2, s=1: out 5, total pad 1.
        let upper = try WindowGeometry.resolve(input: [5], kernel: [2], strides: nil, dilations: nil, pads: nil, autoPad: "SAME_UPPER", ceilMode: false)
        #expect(upper.padsBegin == [0] && upper.padsEnd == [1] && upper.output == [5])
        let lower = try WindowGeometry.resolve(input: [5], kernel: [2], strides: nil, dilations: nil, pads: nil, autoPad: "SAME_LOWER", ceilMode: false)
        #expect(lower.padsBegin == [1] && lower.padsEnd == [0])
    }

    @Test("MaxPool ceil_mode rounds up but drops a window starting in the right padding")
    func poolCeil() throws {
        // D=32, k=3, s=2: floor((32−3)/2)+1 = 15, ceil → 16.
        #expect(try out("y = MaxPool(x) {kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1}", inputs: "input x: f32[N, 1, 32, 32]")
                == TensorType(.f32, [N, 1, 16, 16]))
        #expect(try out("y = MaxPool(x) {kernel_shape=[3, 3], strides=[2, 2]}", inputs: "input x: f32[N, 1, 32, 32]")
                == TensorType(.f32, [N, 1, 15, 15]))
        // D=4, k=2, s=2, pads 1,1: ceil((4+2−2)/2)+1 = 3 windows start at −1, 1, 3: all inside. 
        let g = try WindowGeometry.resolve(input: [4], kernel: [2], strides: [2], dilations: nil, pads: [1, 1], autoPad: "NOTSET", ceilMode: true)
        #expect(g.output == [3])
        // D=5, k=2, s=2, pads 0,1: ceil((5+1−2)/2)+1 = 3; windows at 0, 2, 4 — 4 < 5 so kept.
        // D=4, k=1, s=2, pads 0,1: ceil((4+1−1)/2)+1 = 3; third window starts at 4 = D: dropped.
        let h = try WindowGeometry.resolve(input: [4], kernel: [1], strides: [2], dilations: nil, pads: [0, 1], autoPad: "NOTSET", ceilMode: true)
        #expect(h.output == [2])
    }

    @Test("AveragePool, global pools, LRN, BatchNormalization keep N and C")
    func pools() throws {
        let x = "input x: f32[N, 8, 6, 6]"
        #expect(try out("y = AveragePool(x) {kernel_shape=[2, 2], strides=[2, 2]}", inputs: x) == TensorType(.f32, [N, 8, 3, 3]))
        #expect(try out("y = GlobalAveragePool(x)", inputs: x) == TensorType(.f32, [N, 8, 1, 1]))
        #expect(try out("y = GlobalMaxPool(x)", inputs: x) == TensorType(.f32, [N, 8, 1, 1]))
        #expect(try out("y = LRN(x) {size=3}", inputs: x) == TensorType(.f32, [N, 8, 6, 6]))
        let bn = "param s: f32[8] = ones\nparam b: f32[8] = zeros\nbuffer m: f32[8] = zeros\nbuffer v: f32[8] = ones"
        #expect(try out("y = BatchNormalization(x, s, b, m, v)", inputs: x + "\n" + bn) == TensorType(.f32, [N, 8, 6, 6]))
        #expect(try out("y, rm, rv = BatchNormalization(x, s, b, m, v) {training_mode=1}", inputs: x + "\n" + bn, value: "rv")
                == TensorType(.f32, [8]))
    }

    @Test("Gemm and MatMul: transposes, broadcasting batch dimensions, vectors")
    func dense() throws {
        #expect(try out("y = Gemm(a, b, c) {transA=1, transB=1}", inputs: "input a: f32[5, N]\nparam b: f32[7, 5] = zeros\nparam c: f32[7] = zeros")
                == TensorType(.f32, [N, 7]))
        #expect(try out("y = MatMul(a, b)", inputs: "input a: f32[2, 1, 3, 4]\ninput b: f32[5, 4, 6]") == TensorType(.f32, [2, 5, 3, 6]))
        #expect(try out("y = MatMul(a, b)", inputs: "input a: f32[4]\ninput b: f32[3, 4, 6]") == TensorType(.f32, [3, 6]))
        #expect(try out("y = MatMul(a, b)", inputs: "input a: f32[N, 4]\ninput b: f32[4]") == TensorType(.f32, [N]))
    }

    @Test("Broadcasting arithmetic and Sum")
    func broadcasting() throws {
        #expect(try out("y = Add(a, b)", inputs: "input a: f32[N, 3, 1, 5]\ninput b: f32[4, 1]") == TensorType(.f32, [N, 3, 4, 5]))
        #expect(try out("y = Div(a, b)", inputs: "input a: f32[2, 3]\ninput b: f32[]") == TensorType(.f32, [2, 3]))
        #expect(try out("y = Sum(a, b, c)", inputs: "input a: f32[3]\ninput b: f32[2, 1]\ninput c: f32[1, 1, 1]") == TensorType(.f32, [1, 2, 3]))
    }

    @Test("Flatten and Reshape carry the symbolic batch through products")
    func reshape() throws {
        #expect(try out("y = Flatten(x)", inputs: "input x: f32[N, 4, 3, 3]") == TensorType(.f32, [N, 36]))
        #expect(try out("y = Flatten(x) {axis=0}", inputs: "input x: f32[N, 4]") == TensorType(.f32, [1, Dim(coefficient: 4, symbols: ["N"])]))
        #expect(try out("y = Flatten(x) {axis=-1}", inputs: "input x: f32[N, 4, 3]") == TensorType(.f32, [Dim(coefficient: 4, symbols: ["N"]), 3]))
        #expect(try out("y = Reshape(x, s)", inputs: "input x: f32[N, 64, 1, 1]\nconst s: i64[2] = [0, -1]") == TensorType(.f32, [N, 64]))
        #expect(try out("y = Reshape(x, s)", inputs: "input x: f32[N, 64, 2, 2]\nconst s: i64[2] = [-1, 16]")
                == TensorType(.f32, [Dim(coefficient: 16, symbols: ["N"]), 16]))
        #expect(try out("y = Reshape(x, s)", inputs: "input x: f32[2, 3, 4]\nconst s: i64[3] = [4, 0, 2]") == TensorType(.f32, [4, 3, 2]))
    }

    @Test("the Shape → Gather → Unsqueeze → Concat → Reshape chain of exported models infers [N, 64]")
    func exportedFlattenChain() throws {
        let t = try out("""
            s = Shape(x)
            n = Gather(s, zero) {axis=0}
            nu = Unsqueeze(n, axes0)
            target = Concat(nu, minus1) {axis=0}
            y = Reshape(x, target)
            """, inputs: "input x: f32[N, 64, 1, 1]\nconst zero: i64[] = [0]\nconst axes0: i64[1] = [0]\nconst minus1: i64[1] = [-1]")
        #expect(t == TensorType(.f32, [N, 64]))
    }

    @Test("Slice with negative indices and steps; Pad; Squeeze; Unsqueeze; Transpose")
    func movement() throws {
        // axis 1 of 10, start −1, end −11, step −3: 9, 6, 3, 0 → 4 elements.
        #expect(try out("y = Slice(x, st, en, ax, sp)",
                        inputs: "input x: f32[N, 10, 6]\nconst st: i64[2] = [-1, 1]\nconst en: i64[2] = [-11, 1000]\nconst ax: i64[2] = [1, -1]\nconst sp: i64[2] = [-3, 2]")
                == TensorType(.f32, [N, 4, 3]))
        #expect(try out("y = Pad(x, p)", inputs: "input x: f32[N, 16, 16, 16]\nconst p: i64[8] = [0, 8, 0, 0, 0, 8, 0, 0]") == TensorType(.f32, [N, 32, 16, 16]))
        #expect(try out("y = Pad(x, p) {mode=\"reflect\"}", inputs: "input x: f32[2, 5]\nconst p: i64[4] = [0, -1, 1, 2]") == TensorType(.f32, [3, 6]))
        #expect(try out("y = Squeeze(x, a)", inputs: "input x: f32[N, 1, 3, 1]\nconst a: i64[1] = [-1]") == TensorType(.f32, [N, 1, 3]))
        #expect(try out("y = Squeeze(x)", inputs: "input x: f32[N, 1, 3, 1]") == TensorType(.f32, [N, 3]))
        #expect(try out("y = Unsqueeze(x, a)", inputs: "input x: f32[3, 4]\nconst a: i64[2] = [0, -1]") == TensorType(.f32, [1, 3, 4, 1]))
        #expect(try out("y = Transpose(x) {perm=[0, 2, 3, 1]}", inputs: "input x: f32[N, 3, 4, 5]") == TensorType(.f32, [N, 4, 5, 3]))
        #expect(try out("y = Transpose(x)", inputs: "input x: f32[2, 3, 4]") == TensorType(.f32, [4, 3, 2]))
    }

    @Test("Concat, Gather, ReduceMean, Softmax, Shape with start/end")
    func misc() throws {
        #expect(try out("y = Concat(a, b) {axis=-3}", inputs: "input a: f32[N, 2, 4, 4]\ninput b: f32[N, 5, 4, 4]") == TensorType(.f32, [N, 7, 4, 4]))
        #expect(try out("y = Gather(x, i) {axis=1}", inputs: "input x: f32[N, 10, 3]\ninput i: i64[2, 5]") == TensorType(.f32, [N, 2, 5, 3]))
        #expect(try out("y = ReduceMean(x) {axes=[2, 3]}", inputs: "input x: f32[N, 8, 4, 4]") == TensorType(.f32, [N, 8, 1, 1]))
        #expect(try out("y = ReduceMean(x) {axes=[-1], keepdims=0}", inputs: "input x: f32[N, 8, 4]") == TensorType(.f32, [N, 8]))
        #expect(try out("y = LogSoftmax(x) {axis=1}", inputs: "input x: f32[N, 8]") == TensorType(.f32, [N, 8]))
        #expect(try out("y = Shape(x) {start=1, end=-1}", inputs: "input x: f32[N, 8, 4, 4]") == TensorType(.i64, [2]))
    }

    @Test("Constant and ConstantOfShape take their type from attributes")
    func constants() throws {
        #expect(try out("y = Constant() {value_ints=[1, 2, 3]}", inputs: "") == TensorType(.i64, [3]))
        #expect(try out("y = Constant() {value_float=2.5}", inputs: "") == TensorType(.f32, []))
        #expect(try out("y = ConstantOfShape(s) {value=i32[1] [7]}", inputs: "const s: i64[3] = [2, 3, 4]") == TensorType(.i32, [2, 3, 4]))
        #expect(try out("y = ConstantOfShape(s)", inputs: "const s: i64[1] = [5]") == TensorType(.f32, [5]))
    }

    @Test("symbolic dimensions multiply and divide")
    func dims() {
        let a = Dim(coefficient: 64, symbols: ["N"])
        #expect(a.description == "64*N")
        #expect(Dim.divide(a, by: Dim(16)) == Dim(coefficient: 4, symbols: ["N"]))
        #expect(Dim.divide(a, by: N) == Dim(64))
        #expect(Dim.divide(a, by: Dim(7)) == nil)
        #expect(a.bound(["N": 3]) == Dim(192))
    }
}
