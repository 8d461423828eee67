import Testing

@testable import WaybillDefinition

/// Reading `choice` steps and `next:`: the model the engine gets, and the warnings about paths.
@Suite("Choice steps in workflow files")
struct ChoiceReaderTests {
    static let routed = """
        name: demo
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
        steps:
          - id: route
            choice:
              - when: { value: "${input.express}", equals: true }
                next: express
              - when:
                  any:
                    - { value: "${input.total}", less_than: 10 }
                    - not: { value: "${input.channel}", in: [web, shop] }
                fail: { code: refused, message: too small }
              - next: end
            next: standard
          - id: standard
            command: tms.standard
            next: invoice
          - id: express
            command: tms.express
          - id: invoice
            command: billing.invoice
            input: { tracking: "${steps.standard.output.tracking}" }
        """

    @Test("rules, conditions and targets read into the model; next: sets where a step goes")
    func model() throws {
        let (definition, warnings) = try WorkflowLoader.loadReportingWarnings(yaml: Self.routed, file: "demo.yaml")
        guard case .choice(let choice) = definition.steps[0].action else {
            Issue.record("route is not a choice: \(definition.steps[0].action)")
            return
        }
        #expect(choice.rules.map(\.target) == [.step("express"), .fail(code: "refused", message: "too small"), .end])
        #expect(
            choice.rules[0].when
                == .compare(.value(ExpressionPath(root: .input, components: [.member("express")])), .equals(true)))
        guard case .any(let alternatives) = choice.rules[1].when else {
            Issue.record("rule 2 is not an any: \(choice.rules[1].when)")
            return
        }
        #expect(alternatives.count == 2)
        guard case .not(.compare(_, .oneOf(let channels))) = alternatives[1] else {
            Issue.record("the second alternative is not a not-in: \(alternatives[1])")
            return
        }
        #expect(channels == ["web", "shop"])
        #expect(choice.rules[2].when == .all([]), "a last rule without when always holds")
        #expect(definition.steps[0].next == .step("standard"))
        #expect(definition.steps[1].next == .step("invoice"))
        #expect(definition.steps[0].action.kindName == "choice")
        #expect(definition.steps[0].action.isLocal)

        // The last rule always holds, so nothing falls through to route's next: no path reaches standard, and invoice
        // reads the output of a step the path to it never runs.
        #expect(warnings.map(\.code) == [.mayBeBypassed, .mayBeBypassed])
        #expect(
            warnings.first?.description
                == "demo.yaml:16:9: warning: no path reaches step 'standard': every choice and next jumps over it; "
                + "remove it or point a next at it")
        #expect(
            warnings.last?.description
                == "demo.yaml:23:25: warning: step 'invoice' reads ${steps.standard.output.tracking}, but a choice or "
                + "next may jump over step 'standard' on the way, and then the path does not resolve; read it only on "
                + "paths that run 'standard', or route with a choice that tests it with present")
    }

    @Test("conditions hold or not over the saga's data; a missing field reads as null except in numeric comparisons")
    func conditions() throws {
        let total = Template.value(ExpressionPath(root: .input, components: [.member("total")]))
        let scope = EvaluationScope(input: ["total": 12, "tags": []], sagaId: "o-1", workflow: "demo")
        #expect(try Condition.compare(total, .greaterThan(10)).holds(in: scope))
        #expect(try !Condition.compare(total, .atMost(11)).holds(in: scope))
        let tags = Template.value(ExpressionPath(root: .input, components: [.member("tags")]))
        #expect(try Condition.compare(tags, .empty(true)).holds(in: scope))
        let missing = Template.value(ExpressionPath(root: .input, components: [.member("note")]))
        #expect(try Condition.compare(missing, .present(false)).holds(in: scope))
        #expect(try Condition.compare(missing, .notEquals("x")).holds(in: scope))
        #expect(try Condition.all([]).holds(in: scope))
        #expect(try !Condition.any([]).holds(in: scope))
        #expect(throws: EvaluationError.self) { try Condition.compare(missing, .lessThan(1)).holds(in: scope) }
        #expect(throws: EvaluationError.self) { try Condition.compare(tags, .lessThan(1)).holds(in: scope) }
    }

    @Test("as on a choice is refused, like the other keys of command steps")
    func asOnAChoiceIsRefused() {
        let yaml = """
            name: demo
            version: 1
            trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
            steps:
              - id: route
                choice:
                  - next: end
                as: item
            """
        #expect {
            try WorkflowLoader.load(yaml: yaml, file: "demo.yaml")
        } throws: { error in
            (error as? WorkflowDiagnostics)?.diagnostics.map(\.description) == [
                "demo.yaml:8:5: a choice step only picks where the saga goes; as belongs to command steps, remove it"
            ]
        }
    }
}
