"""Each saga's input model, one module per saga named after it in snake_case (OrderFulfillment -> order_fulfillment):
a pydantic model `Input`, the body of `POST /<route>` and the saga's input. Read by the API at cold start and by the
stack at synth (its API Gateway request model); checked by `statemachines.checks` against the saga's `api.id_field`."""
