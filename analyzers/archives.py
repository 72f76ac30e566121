"""Archives: zip, tar, compressed streams and 7z; member hazards (slip, links, duplicates, bombs).

(Placeholder: the archive walker lands with the foundation issue.)
"""
