import CFuzzDriver
import WaybillDefinition

/// One libFuzzer input: a template string and, after the first NUL byte, a JSON document used as the saga's input and
/// as every step's output. The template is parsed as a workflow scalar is, then evaluated, also as a wait step's key
/// over the document as the message; the JSON is read as a reply, start or wait message body is; and the two texts
/// are matched as a topic binding key and a routing key, as a wait message's delivery is. Errors are expected
/// outcomes; crashes, hangs and sanitizer reports are not.
func fuzzExpressions(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = bytes.firstIndex(of: 0) ?? bytes.endIndex
    let templateText = String(decoding: bytes[..<split], as: UTF8.self)
    let json = split < bytes.endIndex ? bytes[(split + 1)...] : bytes[bytes.endIndex...]
    let value = (try? JSONText.decode(json)) ?? .null
    if case .object = value { _ = JSONText.encode(value) }
    _ = MessageWait.topic(templateText, matches: String(decoding: json, as: UTF8.self))
    _ = MessageWait.correlationText(value)
    guard let template = try? Template.parse(string: templateText) else { return 0 }
    let scope = EvaluationScope(
        input: value, stepOutputs: ["accept": value, "reserve": value], alias: ("shipment", value), sagaId: "o-1",
        workflow: "fuzz")
    _ = try? template.evaluate(in: scope)
    _ = try? template.evaluateString(in: scope)
    let message = EvaluationScope(
        input: .null, alias: (MessageWait.messageName, value), sagaId: "", workflow: "")
    _ = (try? template.evaluate(in: message)).flatMap(MessageWait.correlationText)
    return 0
}

/// The program's entry (SwiftPM links every executable's `main` to this symbol): libFuzzer's driver, with this
/// target's callback.
@_cdecl("FuzzExpressions_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzExpressions(data, size) }
}
