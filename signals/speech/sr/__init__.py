"""HiFi-SR speech super-resolution: any input rate 4-32 kHz to 48 kHz."""
