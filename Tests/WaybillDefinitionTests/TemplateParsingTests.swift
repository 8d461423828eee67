import Testing

@testable import WaybillDefinition

@Suite("Templates in workflow files")
struct TemplateParsingTests {
    static func path(_ root: ExpressionPath.Root, _ components: ExpressionPath.Component...) -> ExpressionPath {
        ExpressionPath(root: root, components: components)
    }

    @Test(
        "string scalars",
        arguments: [
            ("erp.order.accept", Template.literal(.string("erp.order.accept"))),
            ("${input.orderId}", .value(path(.input, .member("orderId")))),
            ("${saga.id}", .value(path(.sagaId))),
            ("${saga.workflow}", .value(path(.sagaWorkflow))),
            (
                "${steps.reserve.output.stock[0].sku}",
                .value(path(.stepOutput("reserve"), .member("stock"), .index(0), .member("sku")))
            ),
            ("${shipment.id}", .value(path(.alias("shipment"), .member("id")))),
            (
                "wms.${shipment.warehouse}.release",
                .interpolated([
                    .text("wms."), .expression(path(.alias("shipment"), .member("warehouse"))), .text(".release"),
                ])
            ),
            (
                "${input.a}${input.b}",
                .interpolated([.expression(path(.input, .member("a"))), .expression(path(.input, .member("b")))])
            ),
            (
                "order ${input.orderId}",
                .interpolated([.text("order "), .expression(path(.input, .member("orderId")))])
            ),
        ])
    func stringScalar(text: String, expected: Template) throws {
        #expect(try Template.parse(string: text) == expected)
    }

    /// How a YAML value under `input` becomes a template: YAML 1.2 core scalars, quoted text always a string.
    @Test(
        "YAML values under input",
        arguments: [
            ("3", Template.literal(.number(3))),
            ("-2.5", .literal(.number(-2.5))),
            ("1.5e3", .literal(.number(1500))),
            ("true", .literal(.bool(true))),
            ("false", .literal(.bool(false))),
            ("null", .literal(.null)),
            ("~", .literal(.null)),
            ("yes", .literal(.string("yes"))),
            ("NO", .literal(.string("NO"))),
            ("\"3\"", .literal(.string("3"))),
            ("'true'", .literal(.string("true"))),
            ("0x1F", .literal(.string("0x1F"))),
            ("1.2.3", .literal(.string("1.2.3"))),
            ("\"${input.orderId}\"", .value(path(.input, .member("orderId")))),
            ("${input.orderId}", .value(path(.input, .member("orderId")))),
            ("[1, a]", .array([.literal(.number(1)), .literal(.string("a"))])),
            ("{ a: { b: \"${saga.id}\" } }", .object(["a": .object(["b": .value(path(.sagaId))])])),
            ("", .literal(.null)),
        ])
    func yamlValue(yaml: String, expected: Template) throws {
        let text = """
            name: demo
            version: 1
            trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }
            steps:
              - id: accept
                command: erp.order.accept
                input:
                  value: \(yaml)
            """
        let definition = try WorkflowLoader.load(yaml: text, file: "t.yaml")
        guard case .command(let command) = definition.steps[0].action else {
            Issue.record("expected a command step")
            return
        }
        #expect(command.input == .object(["value": expected]))
    }

    @Test(
        "syntax errors carry the offset inside the scalar",
        arguments: [
            ("${input.orderId", 0, "unterminated expression: '${' without a closing '}'"),
            ("ab${input..x}", 10, "empty name in expression '${input..x}'"),
            ("${input.lines[x]}", 13, "bad array index in expression '${input.lines[x]}'; write [0], [1], ..."),
            ("${saga.name}", 2, "unknown saga field in '${saga.name}'; use saga.id or saga.workflow"),
            ("${steps.a.result}", 2, "a step reference must read steps.<id>.output, not '${steps.a.result}'"),
        ])
    func syntaxError(text: String, offset: Int, message: String) {
        #expect(throws: TemplateSyntaxError(.badSyntax, message: message, offset: offset)) {
            try Template.parse(string: text)
        }
        #expect(TemplateSyntaxError.Code.badSyntax.rawValue == "expression.bad_syntax")
    }
}
