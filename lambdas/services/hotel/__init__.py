"""HotelService: holds rooms at a hotel for a trip and releases them on compensation."""
