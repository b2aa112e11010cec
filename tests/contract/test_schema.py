"""The contract tier can fail: what Prefect Server v1's published schema does not allow, the
stand-in refuses with GraphQL's own error and HTTP 400, runs nothing, and records it, which fails
the test that sent it (the ``prefect_api`` fixture)."""

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import replace

import pytest

from simmate_k8s.errors import ServerError
from tests.contract.prefect_server_api import TABLES, build_schema


def post(api, query, variables=None):
    request = urllib.request.Request(
        api.url, data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


STATES = "mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) " \
         "{ states { id } } }"
REFUSED = {  # case: (query, variables, GraphQL's message: graphql-core, constraints.txt)
    "null for a non-null input": (
        'mutation { create_project(input: {tenant_id: null, name: "x"}) { id } }', None,
        "Expected value of non-null type 'String!' not to be None."),
    "null for a non-null input, in variables": (
        STATES, {"input": {"states": [{"flow_run_id": str(uuid.uuid4()), "state": None}]}},
        "Variable '$input' has invalid value at .states[0].state: Expected value of non-null "
        "type 'JSON!' not to be None."),
    "an input field Prefect does not declare": (
        f'mutation {{ create_flow_run(input: {{flow_id: "{uuid.uuid4()}", labelz: ["a"]}}) '
        "{ id } }", None,
        "Expected value of type 'create_flow_run_input' not to include unknown field 'labelz'"),
    "a column the migrations dropped": (
        "{ flow_run { id duration } }", None, "Cannot query field 'duration' on type 'flow_run'."),
    "a column of another table": (
        "{ flow { id state } }", None, "Cannot query field 'state' on type 'flow'."),
    "a value of the wrong type": (
        '{ flow(where: {version: {_eq: "2"}}) { id } }', None,
        "Int cannot represent non-integer value"),
    "a uuid that is not one": (
        '{ flow_run(where: {id: {_eq: "abc"}}) { id } }', None,
        'invalid input syntax for type uuid: "abc"'),
    "an operator Hasura does not generate": (
        '{ flow_run(where: {state: {_startswith: "F"}}) { id } }', None,
        "Expected value of type 'String_comparison_exp' not to include unknown field "
        "'_startswith'"),
    "a mutation Prefect does not have": (
        "mutation { delete_everything { success } }", None,
        "Cannot query field 'delete_everything' on type 'Mutation'."),
}


@pytest.mark.parametrize(("query", "variables", "message"), REFUSED.values(), ids=list(REFUSED))
def test_what_the_schema_does_not_allow_is_refused(prefect_api, query, variables, message):
    status, answer = post(prefect_api, query, variables)
    assert status == 400, answer
    (error,) = answer["errors"]
    assert message in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert prefect_api.calls == [], "nothing ran"
    assert len(prefect_api.unexpected) == 1 and message in prefect_api.unexpected[0]
    prefect_api.unexpected.clear()  # the refusal was the point


def test_an_object_relationship_is_nullable_as_its_foreign_key(prefect_api):
    """Hasura's rule: non-null only when the foreign-key column is NOT NULL. flow.project_id
    is nullable since d2b731ef9bb7, flow.flow_group_id is not."""
    fields = prefect_api.schema.type_map["flow"].fields
    assert (str(fields["project"].type), str(fields["flow_group"].type)) == (
        "project", "flow_group!")
    query = "{ flow { project { name } flow_group { name } } }"
    assert post(prefect_api, query) == (200, {"data": {"flow": []}})


def test_an_operation_of_the_package_the_server_cannot_answer_fails(registered):
    """Following a run pages its logs by ``log.created``. Were that column gone (as migration
    5ac0d20cce89, a dead branch, would have it), the package's query is refused and the
    command fails with Prefect Server's words: the tier checks the package's real queries."""
    from simmate_k8s import server, server_config

    log = TABLES["log"]
    without = {name: kind for name, kind in log.columns.items() if name != "created"}
    registered.schema = build_schema({**TABLES, "log": replace(log, columns=without)})
    session = server.connect(server_config.load())
    flow_id = next(iter(registered.state.flows))
    run_id = registered.state.m_create_flow_run(None, {"flow_id": flow_id})["id"]
    refused = "refused the request: .*Cannot query field 'created' on type 'log'"
    with pytest.raises(ServerError, match=refused):
        server.Follower(session, run_id).poll()
    assert [u for u in registered.unexpected if "Cannot query field 'created' on type 'log'" in u]
    registered.unexpected.clear()  # the refusal was the point
