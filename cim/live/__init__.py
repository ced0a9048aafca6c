"""The live hub: sensor readings and citizen tickets in (MQTT, HTTP), stored in PostGIS, out to viewers."""
