"""The saga tracker of choreographed sagas: keeps their saga records from the events on the saga bus."""
