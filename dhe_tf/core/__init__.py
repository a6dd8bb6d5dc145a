"""What every layer uses: bits, errors, checks, class codewords.

    codes      bits: binarize activations, pack / unpack, parse code strings
    checks     the one home of each input check (positive integers, packed
               codes, a model's fingerprint against an index's, TF errors
               made readable)
    errors     the one-line errors the commands print (ConfigError, ...)
    codewords  one target code per class, as far apart as K bits allow
    downloads  whether a file can be fetched (no network: say what to pass)
"""
