import Testing
import WaybillDefinition
import WaybillWire

/// What the worker writes into `x-waybill-error` for a message it cannot use (docs/wire.md): the refusal's code, its
/// message, and the cause in parentheses. No broker needed.
struct WireRefusalTests {
    static let workflow = """
        name: orders
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }
        steps:
          - id: accept
            command: erp.order.accept
        """

    static func start(_ body: String) throws -> WireRefusal? {
        let definition = try WorkflowLoader.load(yaml: workflow, file: "orders.yaml")
        do {
            _ = try WireMessages.start(Array(body.utf8), definition: definition)
            return nil
        } catch {
            return error
        }
    }

    @Test(
        "a start message that cannot become a saga is refused with a code and a reason",
        arguments: [
            (
                "this is not JSON", WireRefusal.Code.notJSON,
                "wire.not_json: start message is not JSON; publish the order as a JSON object "
                    + "(json.unexpected_character: expected 'true', found 'h' at byte 1)"
            ),
            (
                "[1]", .notAnObject, "wire.not_an_object: start message must be a JSON object, got array"
            ),
            (
                #"{"lines": []}"#, .noSagaId,
                "wire.no_saga_id: start message has no saga id where the workflow's trigger.saga_id looks for it "
                    + "(expression.no_member: cannot evaluate ${input.orderId}: no member 'orderId')"
            ),
            (
                #"{"orderId": ""}"#, .noSagaId,
                "wire.no_saga_id: start message has an empty saga id; publish the order with its id"
            ),
        ])
    func refusedStarts(body: String, code: WireRefusal.Code, reason: String) throws {
        let refusal = try #require(try Self.start(body))
        #expect(refusal.code == code)
        #expect(refusal.description == reason)
    }

    static let shapedWorkflow =
        workflow + """

            input:
              orderId: string
              note?: string
              lines:
                - sku: string
                  quantity: integer
            """

    @Test(
        "a start that does not have the declared input is refused with the JSON path of the first problem",
        arguments: [
            (#"{"orderId": 12345, "lines": []}"#, "$.orderId: expected a string, got the number 12345"),
            (#"{"orderId": "o-1"}"#, "$.lines: missing (required)"),
            (#"{"orderId": "o-1", "lines": null}"#, "$.lines: missing (required)"),
            (
                #"{"orderId": "o-1", "lines": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": "2"}]}"#,
                #"$.lines[1].quantity: expected an integer, got the string "2""#
            ),
            (
                #"{"orderId": "o-1", "lines": [{"sku": "A", "quantity": 1.5}]}"#,
                "$.lines[0].quantity: expected an integer, got the number 1.5"
            ),
            (#"{"orderId": "o-1", "lines": {"sku": "A"}}"#, "$.lines: expected an array, got an object"),
            (#"{"orderId": "o-1", "lines": [], "note": 7}"#, "$.note: expected a string, got the number 7"),
        ])
    func badInput(body: String, problem: String) throws {
        let definition = try WorkflowLoader.load(yaml: Self.shapedWorkflow, file: "orders.yaml")
        let refusal = #expect(throws: WireRefusal.self) {
            try WireMessages.start(Array(body.utf8), definition: definition)
        }
        #expect(refusal?.code == .badInput && refusal?.code.rawValue == "wire.bad_input")
        #expect(
            refusal?.message
                == "start message does not have the input workflow orders declares: \(problem); fix the order and "
                + "publish it again")
    }

    @Test("a start with the declared input, extra fields and a missing optional one, is taken")
    func goodInput() throws {
        let definition = try WorkflowLoader.load(yaml: Self.shapedWorkflow, file: "orders.yaml")
        let start = try WireMessages.start(
            Array(#"{"orderId": "o-1", "lines": [{"sku": "A", "quantity": 2, "gift": true}], "channel": "web"}"#.utf8),
            definition: definition)
        #expect(start.sagaId == "o-1")
        #expect(
            definition.input
                == .object([
                    .init(name: "orderId", shape: .string), .init(name: "note", shape: .string, required: false),
                    .init(
                        name: "lines",
                        shape: .array(
                            .object([.init(name: "sku", shape: .string), .init(name: "quantity", shape: .integer)]))),
                ]))
    }

    @Test("a saga id too long for AMQP short strings is refused and the limit is named")
    func overlongSagaId() throws {
        let refusal = try #require(try Self.start(#"{"orderId": "\#(String(repeating: "x", count: 300))"}"#))
        #expect(refusal.code == .sagaIdTooLong && refusal.code.rawValue == "wire.saga_id_too_long")
        #expect(refusal.cause == nil)
        #expect(refusal.message.contains("at most 227"))
    }

    @Test(
        "a reply that cannot be read is refused with a code and a reason",
        arguments: [
            (
                "nope",
                "wire.not_json: reply is not JSON (json.unexpected_character: expected 'null', found 'o' at byte 1)"
            ),
            (#"{"status":"error"}"#, "wire.bad_reply: error reply without a string 'code'"),
            (
                #"{"status":"error","code":"x","retryable":"no"}"#,
                "wire.bad_reply: error reply with a non-boolean 'retryable'"
            ),
            (#"{"output":1}"#, #"wire.bad_reply: reply needs "status": "ok" or "error""#),
        ])
    func refusedReplies(body: String, reason: String) {
        #expect {
            _ = try WireMessages.reply(Array(body.utf8))
        } throws: { error in
            (error as? WireRefusal)?.description == reason
        }
    }
}
