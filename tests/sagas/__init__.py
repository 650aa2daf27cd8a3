"""The example sagas' harness data, one package per saga, named after its definition file
(statemachines/sagas/<saga>.saga.yaml -> tests/sagas/<saga>/): its sample inputs, demo scenarios and invariant check,
in a `kit` module the test kit (saga_testkit/) reads."""
