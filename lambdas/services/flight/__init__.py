"""FlightService: holds seats on a flight for a trip, releases them on compensation, and issues the tickets."""
