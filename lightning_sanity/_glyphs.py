"""Text for the suite's charts without Pillow: the printable ASCII glyphs of a small sans-serif font, pre-rendered.

Drawing a chart's labels through Pillow meant importing ``PIL.Image`` (its Exif and TIFF tag tables) and loading a
FreeType font at the first chart of every process, about 20 ms, most of the suite's end-of-fit work on a small
model. The glyphs here are Pillow's default font (Aileron Regular, https://dotcolon.net/fonts/aileron, public
domain under CC0) rendered once at the two sizes the charts use, as 8-bit coverage masks with their integer
advances; this font has no kerning at these sizes, so placing glyph after glyph lays a string out exactly as
Pillow's basic layout does. ``python -m lightning_sanity._glyphs`` (with Pillow) prints the data again.

Example::

    >>> import numpy as np
    >>> font = font_of(12)
    >>> font.length("abc"), font.bbox("Ag")
    (21, (0, 3, 16, 15))
    >>> canvas = np.full((20, 40, 3), 255, dtype=np.uint8)
    >>> font.draw(canvas, (2, 0), "Hi", (0, 0, 0))
    >>> bool(canvas.min() < 100)
    True
"""

from __future__ import annotations

import base64
import zlib
from functools import lru_cache
from typing import Any

import numpy as np

#: the sizes (pixels) the charts use, and the characters drawn (anything else is drawn as "?").
SIZES = (12, 13)
FIRST, LAST = 32, 126

# For each size, one row per character FIRST..LAST: advance, x and y offset of the mask from the pen (the top of the
# ascender at y), mask width and height; then every mask's bytes, row after row. zlib, then base64.
_DATA: dict[int, str] = {}
_DATA[12] = """
eNqVGAdYlMdy/uuFcoiKaGiKeNgQiRpNfFjQSDRqgi8+NWge6rPEh7FgCRg7aECCqGgsWIKF2CWi4SkqBCNRUVC5/4524NEEFVv4
Fbl7s/vfIVLMl/v5d2Znd2ZnZndn5kcIlp+QvgKQg4hiInylFJMijWACkIAScUKT4yOjmAwxC6+Q8gqwVZoxIWKEV4KPmGKklSDd
ZFJiK6S8MmwZiimQh/CbTEKcqXhLA4bKl5tpkhYwWQs06TtpUrP2YlxV2oDxq4mprhbtRY1okgZ5Soop8JE10UBKfdTcVy1p8Gae
vJlP32Ul4VU0WeNtec3XUDSS8saON/rJmugna7DSqokdZI94DsbM0Xj3LTvY+Bww2CMeJOtaYcuYz5qQeh/M/n7bQzxN1gJNaF6N
9z2hKRr56o3/LJiV2V5pA01oto0/abxkSQMmbYQ1XkNEMZH5HPAcFnvljaRIGqTIG9aQ4DyeJmmkM9MghTH7irdNANZmzOI/KT2f
aq7xo0hQ/da4j/OPe61Dtq6RgRMRBARGegLEFmSUpzgAJMkPA7hpn+qrDgJ4rZo1BmdM/SzOCcGmLkk0FBARMLbYdMNZWjOTW7Lf
xdiDc/1aVB7PMQB9/zDddCVz9l4YO1XNDXg0/9lgbkKmJL7SmO1t5v2xNBhgerbIof4f5WBT2g/aGsfeh6hoHArXTfPQKfmQc3YU
D0cnfJl+cRBeswz3V13GaAFCAtsaXUaVgMNRgNCivADwusLm4UEXlARQBiejEKz/CSAq9OcX9HlSVmhkOzHZ84WkT8YJlNb6mY3J
0pTcBLD450BXGHgGwTSACjXYm6TQpQ4oJH1KJ+Owv+uEEBDk2kFMMExKhgEl0PMpaRGPCUZ6QIjZW6JRnpxkpHJZUv3+2SBJXRQP
MOMriHnf7I+3wUgWdWWdm4wNvAixq5li57VsuuKQ6ipS+n1P/DUQm1T0u3o7It+OwOZ/YrTwACLBnxMnol+YqUSCMqHUEM7A1lMi
1d3pzOMBALMvOWKUhY8qur7G8V7PzT3zGM4U2t6dbuHzzfoztDKcG2tL9GnlHXFDl6HuUOYOa9K+wOPj/YisO+ciOWuVPgAd8lAR
VfYCjOMZYUjcWs+y7B8wOUf3e+++BY6wLGvCDLSrkih7cBnAx1xxbxJeY27E9cRNrI5KlAmij1gnGPL3qojkZbyD3Cp4eG4phf86
Sz2mKnSjcMe3VDvHBzriV2Ejb1Po8ifqEPHhL5RzG2lDDqWzP1pvzrCTn97haIsOMXzTH+AD/fIUmTgxSrqnuDAGL/s8bcERWwg8
LxUe2gV3PgDwWGRtCryRu0nR2Rglsf11i6sJeX3vi2vRp4OK4PAGkJ2JgDYnirUbJb/imvcfk8Vi12DT4UEbbKPIfratciC7GouN
XdV72K7aiY3Ng85kcp8LWl1iR0HZdBDEXHQy4j73qxbmLhLI90bAkLoarrKHqOQbgWxPJh17v1pQHghM5EnwuaRlD9hDuwSdfrMI
UjYy0jMhKiPR66Y91fIxpMWIVaefgGOCNm1BnigCx+bsh8yl0P6uN7in5ueMBtUNxV7ebeT8vemhaw6FT7vuSDDcrW6HT7ruOe4N
NR9j/5MrG9ri8Qu4FkGi1BQFS37Q6MdTvAiafKQbkXU23oVc+RqwW5M6em1GAAOTBWS4X6b2el9B6XiYnWX7gwAGVRHi9zvI5b5l
SzbfmRBG8PqRlt4RNDExNz+eODK0YARjs9LQAT7Nd/k5PyrkSBxkTtm+U3xz1aeFNqb2XGf4dWyfmi71bvWMsOI9vxyVqftLp8m1
zPH5cC1s5uXlP1xYzMDAR3OVjHu4FbkuR/W5B/vRNXKLKOiRfc+bwFVrIsmuwj2foXcRdL8P4iddAVY+1etfLAG4Oxhg8jXwfIB2
2dR2/G43jXVfq42sJmcwPZMz71HgVU1B2HrAsaKy/4ppzIo9RI+vdxUFYacInzaxPcDwaywbhanE19AHlEcxHGTOxgkdn4ltjeRM
gQ3jZmR4t0vrKQXNuP4fhN0qGPAv7QE2ySuxN+mO9m6okKypyUvsSlUQTKnowl+aTft4OEzLQ69HPPS/zcPdGwkUzy2yp/z7HIkc
/I1sIdABP5YNrY+xU/+SPbkVdvMdh+FX2YI4G3RLUTewS0tEt0xHav8zQltje34G7jg4sHkGkFHKh8iZReaQcDLeoAavDCJrhk6T
4seZ5fJ5okVI9S3k/nJes+eN1i21Eg/Sur5moPdTYYUfrLgMw3K06Wo6PvW6gkDffEcy30Pfm8y1Zz8hnC/Tz1MJpg1lgby8oU97
8HJXsVYUCi8feacT3wlMFfibqTZdxg5TjnaU4HX0KUDkAGbjsDhEJu0ByBiDSJsSaJNLbU3rM2kTRUKWHxhKEfVvOhHvBl0i8Y/p
BHXTy1xn6q3gDRRYF8nppNjpFHhk8SznZlLgn0MBo8Vm5NX7pUlo6MeVw0Ew/YEbZJHrADt225k60BNb5G6kkaXPswaKec6Pu3mu
oAeuRI6h7Jce/HVI5lNK2CUK+lTT3B55huy5Nr7du88h6mM43c2iT7mTRZ/tltXzLfo8tVD0cIPXZxf4UX30GMj8Mu4/M5XN5YUy
3fzJ4vrU7vxCyzN56P2QrztidtBLUpMlon1V3hh+PHIdD2ce4qFXsQAGX9edbiOq6g07tjkZ5eC5RFhwnERmpz1PM91pWL00Gpf1
edj/sQcsPA9fadjzTg4srVZ+b5JV/zY0N+8C3SiobWukeRUy1oL05BZwScrL22W1+CCRdGRBl0dYfUtqnCDHF2AUarU6Cl28EJ2q
BaaUpIhCjw+ukbnRizYsInDwZQ1JOCAo/wPbzRg2xS8Sybz+AbcwHekMmJ6fCNvVKSHku2JXCMASWOMLZwYnTIFoLGR2LGUMklmY
StBTk0/2vAieOfIyjLKdyudghVM+7hiRXZjxEcDxdLpne19gZT/fhGWkd7kdgGeFI8TEAXPlKwDrkr5B9K5+caOIZjNB2QHqoeBT
xSSxuBo6BNxC+1LmAJwKg39n4nHp9KA7k4W8EBEPI4ul4PAQK/WLCyE2iuTMql6V9kTA0epvqaD+dYrWt2Azxi19Pe1vJ6U4DNGR
2Yo8X9JBJUk2LbIm3+OakTT7xtPJr4tJxFO5V7Fe7ygNG14yjyElIcR5koxNNBOnkP5+YvRnwWTNs1RrrB0gMIjk8nFTMDyrudb+
yKj7E7T8h2nrQXkOzkvnBMHswN+VYJM6kWg3sac/iJPl4HRBw/oDHFsMn2vwW0XlOv45wDTt4aMcKF91AW8OP0VcIRKr/eVlmjUm
ZdO7PFej3yJRG7cKFL+tUJNbOk6jruPToAl3c0yW2hTNWKXPVXPhBWwoflPuYlnMsHu2Mu0NA8R1yDDUy6WeZmG5sSNeJmdIjoGO
Zd2hY1L+nUnQJHIot2vzwjnYHS9QpHCiuk6YzThnwt6DkxvRXH8OTu9klCkctDtVlLOAA1nMXe1aAWzbKVRcDRK9bIfGnXcmGakg
TVqPRZ2TFxwLBcWlxWB/SKOLEEDvpb2sngU5e7wEuGBkP2pt00Cxjc1fx8FOXpNXf6HJwlpIwVs1vAASYhlpcjS0P5GXH6d8O6OF
svlD1PXhMC9bbXKB3s/V5Kusll+xcavc2zRfNqeoa0c+5CKbR96wdBmCCXfssPe+FqOnuq50PRmr/7Laj04ZU9WZzlx9x6rlw/VK
oCrHoidaW+S3RVvopzYFw+wX+OaqTW2gF3lfkCNAX+6Nz1rGQjXE5vUwl9rcq1WbwXqfjsWN/GmvQJkxX/Iab8bYbHpw+jwy98xj
YLNfh1v+t49my1nqbx+4lhKemtuQpjauxNLAqvlBCrqXl+pq99oRopOsn82zEttBv6QnR91sOoLt1iyfaicYr4c52vzbw6BtmFmo
EDOM21tpwtK412O9K84yqJp7kLTenDtWvOM4BTeEOcHBzPKcFVz2OFLvCpfvw/puC7hVCeHqh1gTDnXQo5ULNs+IJDVz4S8+xJTL
Wmw0AaCqxyCl77spFkbfOgdu5czwHIiYWi4MigdxjX3ae6l9f8JS58TEe7B6fgGWmjOu7wO/W5eIJFMQKOvIvwGOhoNE6w8dKt2X
/ITdWVcKSXQTP95EFlqeWIpns+t9u5BTwFyeBeLcgJzPMD6VCVZgjF0RC+pKBq5hErkzoF0J6vndumkxyOZ5++dBhP0OSyNKJJUl
y8bcAr6F80gnHr8zjQQ5QeyacVtC4m93LAwyv8b+umQavw0YH6xFxw671yn4Mz+sHLLmwNAK8xVwr5PjaEslK//c3gD9n5vnOr5u
C9sSsOW7/Z4Djm5kV7c7Fq/45mbo/wG5H0Ns
"""
_DATA[13] = """
eNqlGAlAjVn3vH0reaqJhEyWMZEy2QZjDSMk62+dxZB+w1gzWf5hQvaxZ8+MRllGY9cglaXIEn9T33uVSlKU1KBi6P7n3O89vSj8
//9e755z77n33HPOvWe5ycD8keFPjq0GFBxTIK7mmArH1HyGCnSg5WMa/jVj5rUybIG3OhMmQ0yFmAq/SuQiwZYwGTBm9WqFBlsJ
56IDKX7lSCUJtCYJ1FwCCZdK85pUlpj6rdSaMNpXibuquFRKbgMVl1SBkPYlieUWYyq+VonzrDimeyWppgpnzWu2UnPOZmolJtpU
W61NLeepq+GiM0lguVZbjSzmMe1bbFX1VCvHRC2tq4xZYhITF8vTN59g5RjNU5gsCMhNydeJWkr5mJLbVl3FQpZj6ipjZs6iRnS7
LHWrtJ+MyyJHLVRVzlyk6vhanWkP4qLiNhAxtWk3yz3kHDPfAyWnm/XVWHCplFT7ag8lv2GWVK3pXolcJCafkZm8x5pzrrSfmt9U
TyZ/86/2Iah7A0kdqGdukM1JqxjiFieLxrZBWKuNAIuup966NRMgxHWPI9gJT4VSoQ3ojtbbizM6B/VHCnzn+0N3CguenMeIuyxr
pbLW01nMNmaZK+vG5O6TtQ8PMVKi43WWv0RLM72SDw79Chd4lc572pcpV57VhhUw4y57M5f5mRn/AO1hWQPm7PsQVnYHxwr3r/M9
9iHJ/8+kARcai5FoxhIRNjLqFiWORuTE2AZsbCHAyASJCxv1GPR57QF+yZ8DjfYkG9KUaKn0OVK+pBmrDVBnDHps+hSJuGuznDJj
FhM6Sq9v1POR5kwvCqQrnWSa0+2M0ZB908KuABu84JNEgF9ngrSoAzRgduDG1BxSn8Y5Hdb3nvMV6HJsIGw6+EeDVyF0eEkt4mHT
cRypJvUdO3oylbe8QdAptneOFdjEf3sYhV42EBaMBDxZ8SMaqgoIEFB8wfc1Wv/TEDlXX2I/XxAa1j6EB48x9jw2vvOwiXDBSBqD
yEg6ysgGADanEflqMjbHHXC3b4hRrfB7uStRhF0n5XWMU0FRigc+4wo0ZR8A9H0CHqgvdGQSc99Mh10n5HrDVFwfkcvX97heIV+S
u4LJfa24bG9tlKtSMv5wgWXH1JKNl+AGsvysnGu+kKSHXsWtse1R6IVtn4JepOj9Tti6PC8SBCEZ1OtSMuJaw7q9SsnKVNjZAuc+
oXV2J0jvwBdGN+rpQpNdIxB2K9UUjAfl7kjoEH83LcSGaGtEK/Z8xKE++1sO9y3nEo5LUhJsdN+VCxuSJ5DxG1ociQjnP0BpVsD2
iXzoDy8ODEuTUtZbQ9lSuT5ul6QJWqZf0Qc/YzbtXSDJmgO6qHXgHpedHoxOMystY78e/M9pZBGhkNkToPmMumz8FWGDtRtbr6od
F9qSOQJ4P7J+gbbv/QB+XyvR/rEW7H+/Y1it7od7C/lFfM+oAGq73qOIBRf9qR2QQQlceos8B0bfIsdQpA+gjn+8qEG0wXiwobrQ
H2RbElowtEq3MoXhe6kmbDV89qyk/K6r+t48qTosidO6lqmK/EC6Lgo6xhqFMAdwCDfe2aSECyjS2YVODL27j+DMxf1bcn2rok7U
S2iw3xgdcE+zDJ1x1kG49QPUS+sIH8WkJ/uAQ0rtcPGq81vrkALmvunT5wBsHyfLtiXcFaBp2JFGOyI9obgv9vvFLrPD2zskIZg0
HH2NDPGt5WJxpCWhJ8KaYtvh+I5GCLyLQf9jtHfQxSESGMVDReerhmvtVAXDYYbhg7Uq6F1GgyF7iJJKe8c1oQFvUVBquYthUFpx
Le3mUrpJ4+7PtIFG4Ti7V6HbuvTYNX3Pb4Zrs9YcUm5i7cflOTDXZx6w4Jmqy99urB3TQmQiDDM4sO7PXVuVh2vjJ0LCli9i945N
PIoH5Vb4kyNouy6lHZw2pqYnLnXiu21mfThUFOwO5ciAq27FFHRhXwBk+FAafeoMa8iCX5ZnZeU9wTh8Gl1TkjUC6j2vh8PLImHG
OVrQqtzGkwmpGWc8+A1eYuCgSxkB9fZgpBnK7npRT7vjrkh7xkHwGVon/IYn3DYqzRCN7vhpwecAg4pbwNUFxDp0eV3WjBCVtjWz
Ek/CSRxRa0CYT8ixmTCwGP35yzyUyvtyRmrkR+hKQooQ3py7lOzLhy1EF9t6QIQDRSmg03MRDksXYcRmgoppuY4kV/ovTsQHP7uq
iZ1govV7Cy3q3ctda6CJEQGa7xfShEUYLd3yhwA0ScHQc2kREbpHaR1Yc9PdbM2sMa0K6YWy+qwFDfTD9ck8161FrPfjoZhnrxLP
7rFZqbt7mRIReL4DIQGz3ndyjX81qlcJ1B9x4Mo08OkLqbpoAARfRX9NNl5yE2c5Zw8g6GAcR32bpOk03/r8Er78VI6Cw/U3tors
nAunidx7PvtcXD+zxPX9JKkO5OMn3pM9oFrH/gXplIZxFfwEQldsQfRMMKHtcIbdoy5c6fQeMCFc1H9xCET5iKjrffsClckqt8JC
zRYMRF/kaJbSZMyEKSakR77ONOvkXBPiUaQ3rdsXbEKalfQ3mXp7gglxKqP28/ice8cxcfkU9gKp36NmYJhGOu0Jd2IuhAwrcGc6
HrQqnBiPS8MegDCDkF/3wsCHXiD1x1XQL/5u3gk6CyHVeLwJ3yDoCgedywnIN0bTdTH+6vj2+4zy5B792CxP4YdmeX4xy5Nvlufl
G/KEmuRJr8flecKyTQFa0tybNs+MbiVuFPRvEXYp51CxZQ93tpKrct7XZwwR6T+tFeHkIyJsX6ACt6jk9M0aZX5/0J3+qRnDiqZt
oCL14uBalNEXJpVH1KUdG8dED5tO1URpx6d9QLb+FHgnGAw/24/gSR292lLn/wd5T9cTkU9MCFbBGFHB5xFA9B4t1L28DsB2q9Eg
/KgE/8vE3PmZrd1zqj0CjmCiJ02uDsci7iLAhyWY723KHCGQZ4XDU+AGlUowMrZpLs9uur82rBYljHjpgW1wFK98PgHQPnfp+Rf6
SJIwC6utDFCXtQG7om+OAyzeBHD2Oxh2qMFfcrgwEGDuAdgyCdLaa55g4GqfD0YX2Pp9LyorZcXdMwCGRy0O5NvHoHfZP77chjpT
2WBsbz7AgrZpMSXi8J1UNcpgcDpmBunFWXa5HXil/vDsv0wSlvG6DDpl7d9O0Dqjr022L6WVHXh2BY4w+A6d69rTkkZPPEnJDBUs
uoRPoaxBqM6dcRBItS2MuNekyJUzii1YJ3LuyWzffnArKHaW8xzWKZ+yZa1MH36LKVzAGIHebc4FpJfs4mxepJ7lhfqLXFo4v3Wh
4EuM3vWjeZIEOpjVXbFpG0I84kmAJZTeW/JDvEBpfQFt34SeYTBhPmYKeA/2fJ5coPsxemYMcj1vM2s0eG0G/UWIQi/e5sULxhNN
RoHkSCNoHJ1qxF2OBcKoO2gHvcOwCglMFA4cZXLbitbQGQMzpqcNWPwH3f9zEXsjVExMzt6m8WRbZborWDNjPBiV40nvwE5YLeBD
Y4TRk4VIrS8HeLKFacYgOWjWpKbttoYd+xWKAzt1FZgNG47+WAwfesqNjp9BVJhMeXgVOOy/bdiogteLbZtdacJyhBF7ZVYxTG5F
iwYyOefRnsntGKaloUg/u1tCdHA8nnVjNj3vNqemzpfAz7tlusThVhVYUPkd/Jj8/vYJPT1pnFvCqSCwivcDh4MG4QcJtJzT3bb0
O9c2TAEpTBhXk8mh1vY0I6YSjL1cIK7TuwQKwDd8DM7zyQc4sE2qPYc3rO7vtzO3WVd9WHA49ubtK54Ij2hhuYFe9FhxMaknvW0x
bpifUq9DfTjUlOVBH1557Wv+ycC3FByfra4mL3Qr6IDA/V4X7DXP7EGDmcc5bUzGIj6lxaOv+Uyvsr411Bgah+xTnmy5kNN/leFO
f5wcADOfzoY5d4BuTkf8dWISukviT24hXE2ohaWC399SoAxKMSThwzwkzhaaZo7XvcTACONTW1CFhglJ7H+TaqaL87/+7y9/9fn1
f73Qb7xCzccdmIul/QYKFo7VP7xhYkp6TBPHig8h5Jx9eUAtZR3ocupJZNPa9UG/09CtxBnGFMD0tNs3e4PjQqm4qD7myJ7VcnNn
+AjT3MjzqMm+4v9U8LowDNwTmLx2mR/YXcNBHyE9cRaTX6P/Q5ybPCUOwKG0jm25E/zzAMCh6RCD7y2fyw53MT8p7q9ayUvjlxjU
/8QnTVSBBDxLlEuOgSLX0BrmhkPbx4pPj26YATEjAHK6zpvmc1z3GDfctPiMm82jQSdxsVdSlgQuJ/rRC+rRPoClFRTkwyIoIUqg
do5363zKwV5Z14ZyayYIHAy/cnkCAsd8t1YPG4MkCgvYH2OlN6gIujJp5nks28rr1HvuAFN/w9eWH8RgOP0iyv4+1rfWxbM38pz2
pB3PSanUSg+SAB63t1IGCMEA9IIyzug8LFJaFnfBeGKk2B1J/wabk0LPpxf3cVKg6lCMO7MVzTmoWJLnjy8uidh1Z3qkvr2gf/Vn
fXsFZvqX0leO7sKcAbac5tA81vOllOYtNIa2HDHpgGJoTGz9/wA9Occb
"""


class GlyphFont:
    """The glyphs of one size: advances, offsets and masks, and the few text operations a chart needs."""

    def __init__(self, table: np.ndarray, masks: list[np.ndarray]) -> None:
        self.advance = table[:, 0].tolist()
        self.table = table
        self.masks = masks

    def _index(self, char: str) -> int:
        code = ord(char)
        return code - FIRST if FIRST <= code <= LAST else ord("?") - FIRST

    def length(self, text: str) -> int:
        """The advance of ``text`` in pixels (Pillow's ``textlength``)."""
        return sum(self.advance[self._index(c)] for c in text)

    def bbox(self, text: str) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of ``text`` drawn with its pen at (0, 0), as Pillow's ``textbbox``
        gives it: the ink's top and bottom, and horizontally the advance widened to any ink beyond it;
        ``(0, 0, 0, 0)`` when it has no ink."""
        pen, box = 0, None
        for c in text:
            i = self._index(c)
            _, ox, oy, w, h = self.table[i].tolist()
            if w and h:
                cell = (pen + ox, oy, pen + ox + w, oy + h)
                box = cell if box is None else (min(box[0], cell[0]), min(box[1], cell[1]),
                                                max(box[2], cell[2]), max(box[3], cell[3]))
            pen += self.advance[i]
        if box is None:
            return (0, 0, 0, 0)
        return (min(0, box[0]), box[1], max(pen, box[2]), box[3])

    def draw(self, canvas: np.ndarray, xy: tuple[int, int], text: str, ink: tuple[int, int, int]) -> None:
        """Blend ``text`` in ``ink`` into the ``(H, W, 3)`` uint8 ``canvas`` with its pen at ``xy`` (clipped)."""
        height, width = canvas.shape[:2]
        color = np.asarray(ink, dtype=np.float32)
        pen = int(xy[0])
        for c in text:
            i = self._index(c)
            _, ox, oy, w, h = self.table[i].tolist()
            x0, y0 = pen + ox, int(xy[1]) + oy
            pen += self.advance[i]
            if not (w and h):
                continue
            mask = self.masks[i]
            left, top = max(0, -x0), max(0, -y0)
            right, bottom = min(w, width - x0), min(h, height - y0)
            if right <= left or bottom <= top:
                continue
            alpha = mask[top:bottom, left:right, None].astype(np.float32) / 255.0
            region = canvas[y0 + top:y0 + bottom, x0 + left:x0 + right]
            region[...] = (region * (1.0 - alpha) + color * alpha + 0.5).astype(np.uint8)


@lru_cache(maxsize=len(SIZES))
def font_of(size: int) -> GlyphFont:
    """The glyphs of ``size`` pixels (one of :data:`SIZES`), decoded once."""
    if size not in _DATA:
        raise ValueError(f"font_of: `size` must be one of {SIZES}, got {size!r}")
    raw = zlib.decompress(base64.b64decode("".join(_DATA[size].split())))
    count = LAST - FIRST + 1
    table = np.frombuffer(raw[:count * 10], dtype="<i2").reshape(count, 5).astype(np.int64)
    masks, at = [], count * 10
    for _, _, _, w, h in table.tolist():
        masks.append(np.frombuffer(raw[at:at + w * h], dtype=np.uint8).reshape(h, w))
        at += w * h
    return GlyphFont(table, masks)


def _render(size: int) -> str:
    """The data of one size, rendered with Pillow (what ``_DATA`` holds)."""
    from PIL import Image, ImageDraw, ImageFont

    font: Any = ImageFont.load_default(size)
    ascent, descent = font.getmetrics()
    rows, masks = [], []
    for code in range(FIRST, LAST + 1):
        advance = font.getlength(chr(code))
        if advance != int(advance):
            raise RuntimeError(f"a fractional advance for {chr(code)!r}: the layout would not match Pillow's")
        pad = 4
        image = Image.new("L", (int(advance) + 4 * pad, ascent + descent + 2 * pad), 0)
        ImageDraw.Draw(image).text((pad, pad), chr(code), fill=255, font=font)
        alpha = np.asarray(image)
        ys, xs = np.nonzero(alpha)
        if len(xs):
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            rows.append((int(advance), x0 - pad, y0 - pad, x1 - x0, y1 - y0))
            masks.append(alpha[y0:y1, x0:x1].tobytes())
        else:
            rows.append((int(advance), 0, 0, 0, 0))
            masks.append(b"")
    raw = np.asarray(rows, dtype="<i2").tobytes() + b"".join(masks)
    text = base64.b64encode(zlib.compress(raw, 9)).decode()
    return "\n".join(text[i:i + 100] for i in range(0, len(text), 100))


if __name__ == "__main__":  # regenerate the data: python -m lightning_sanity._glyphs
    for _size in SIZES:
        print(f"_DATA[{_size}] = \"\"\"\n{_render(_size)}\n\"\"\"")
